"""One small registry for everything the suite looks up by name.

Tasks, dataset sources, readouts, prompts, model backends and VLM family profiles are each a
:class:`Registry`: ``register`` refuses a name twice, ``get`` of an unknown name is a
`ConfigError` that lists the known ones (a typo in a task's ``readout`` or a models.toml
``source`` says what exists instead of raising a bare KeyError).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from plainsight.errors import ConfigError

T = TypeVar("T")


class UnknownName(ConfigError, LookupError):
    """A name no registry entry has; the message lists the known names."""


class Registry(Generic[T]):
    """Named values of one kind (``kind`` is what error messages call them: "task", "readout"…)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, value: T) -> T: ...

    def register(self, name: str, value: T | None = None) -> T | Callable[[T], T]:
        """Add ``value`` under ``name`` (or, without a value, return a decorator that does)."""
        if value is None:
            return lambda v: self.register(name, v)
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = value
        return value

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that add a toy entry take it away again)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
