"""`fixtures/models.toml`: the named models of a run.

Each table ``[models.<name>]`` is one entry::

    [models.dinov2-small]
    kind = "encoder"                 # encoder | vlm
    source = "facebook/dinov2-small" # HF id, local dir (relative to the toml), "timm:<id>", "pixels", "double:<kind>",
                                     # "prismatic:<run folder>" (vlm; folder relative to the toml)
    revision = "main"
    feature_layer = -1
    pairs_with = "dinov2-small"      # vlm only: encoder name or "own_tower"
    image_resize = "letterbox"       # vlm only: pad to the processor's aspect ratio first (default) | "processor"
    smoke = true                     # tiny random weights: integrity gates only

A tuned model (``plainsight adapt``) is the entry of its base plus the adapter folder; it takes
every field of the base entry that it does not set itself::

    [models.llava-lora-llm]
    base = "llava-1.5-7b"
    adapter_dir = "adapters/llava-lora-llm"   # relative to the toml

A tuned entry and its base get ``attention_diagnostic = true`` (eager attention; the answer
position's attention share on image tokens, per layer, before vs after tuning).

Unknown keys are an error naming the entry, so typos do not silently fall back to defaults.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from plainsight.errors import ConfigError, ModelLoadError, ModelUnavailable
from plainsight.models.adapters import adaptation_fingerprint
from plainsight.models.backends import PIXELS, PREFIXES, PRISMATIC, backend_name

KINDS = ("encoder", "vlm")
SCORING_MODES = ("letters", "generate")
IMAGE_MODES = ("separate", "side_by_side")
IMAGE_RESIZES = ("letterbox", "processor")  # vlm only: pad to the processor's aspect first | the processor alone


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    source: str
    revision: str | None = None
    adapter: str | None = None
    image_mode: str = "separate"
    image_resize: str = "letterbox"
    feature_layer: int | None = None
    dtype: str = "auto"
    device: str = "auto"
    pairs_with: str | None = None
    trust_remote_code: bool = False
    smoke: bool = False
    scoring: str = "letters"  # letters (log-probability, primary) | generate (greedy reply + strict parser)
    max_new_tokens: int = 8
    batch_size: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    base: str | None = None  # a tuned entry: the entry it was tuned from
    adapter_dir: str | None = None  # a tuned entry: the folder `plainsight adapt` wrote
    attention_diagnostic: bool = False
    base_dir: Path = field(default=Path("."), compare=False)

    @property
    def is_local_path(self) -> bool:
        s = self.source
        return not (s.startswith(PREFIXES) or s == PIXELS) and (
            s.startswith((".", "/", "~")) or (self.base_dir / s).exists()
        )

    @property
    def backend(self) -> str:
        """The name of the backend that loads this entry (models/backends.py), e.g. "vlm:hf", "encoder:timm"."""
        return backend_name(self.kind, self.source, local=self.is_local_path)

    def resolved_source(self) -> str:
        """The source with a relative local path resolved against the toml's folder (``prismatic:<folder>`` too)."""
        if self.is_local_path:
            return str((self.base_dir / Path(self.source).expanduser()).resolve())
        if self.source.startswith(PRISMATIC):
            folder = self.source.removeprefix(PRISMATIC)
            return PRISMATIC + str((self.base_dir / Path(folder).expanduser()).resolve())
        return self.source

    def resolved_adapter_dir(self) -> Path | None:
        if self.adapter_dir is None:
            return None
        return (self.base_dir / Path(self.adapter_dir).expanduser()).resolve()

    def fingerprint_fields(self) -> dict[str, Any]:
        fields_ = {
            "source": self.source,
            "revision": self.revision,
            "adapter": self.adapter,
            "image_mode": self.image_mode,
            "scoring": self.scoring,
            "feature_layer": self.feature_layer,
            "options": self.options,
        }
        if self.kind == "vlm":
            fields_["image_resize"] = self.image_resize
        if self.adapter_dir is not None:
            fields_["adaptation"] = adaptation_fingerprint(self.resolved_adapter_dir())
        if self.attention_diagnostic:
            fields_["attention"] = "eager"
        return fields_


def missing_local_folder(entry: ModelEntry) -> ModelUnavailable | None:
    """The error for an entry whose source is a local folder that is not there (None when it is fine)."""
    source = entry.resolved_source()
    if entry.is_local_path and not Path(source).is_dir():
        return ModelUnavailable(f"{source}: model folder not found ([models.{entry.name}] source)")
    return None


def not_in_hf_cache(entry: ModelEntry, exc: Exception) -> ModelUnavailable:
    """The error for an HF id that the local cache lacks: the suite never downloads, so say how to get it."""
    return ModelUnavailable(
        f"{entry.source} is not in the local Hugging Face cache (the suite never downloads): run "
        f"`huggingface-cli download {entry.source}` where the hub is reachable, or point [models.{entry.name}] "
        f"source at a local folder ({exc.__class__.__name__})"
    )


def load_failure(entry: ModelEntry, exc: BaseException) -> ModelLoadError:
    """The one-line error for a present model that fails to load: the broken weight file(s) where they can be
    told (a safetensors header that does not parse), else the source, and the cause."""
    folder = Path(entry.resolved_source().removeprefix(PRISMATIC))
    broken = (
        [str(p) for p in sorted(folder.rglob("*.safetensors")) if not _safetensors_readable(p)]
        if folder.is_dir()
        else []
    )
    cause = (str(exc).strip().splitlines() or [""])[0]
    return ModelLoadError(f"[models.{entry.name}] {', '.join(broken) or entry.resolved_source()}: cannot be loaded "
                          f"({type(exc).__name__}: {cause})")  # fmt: skip


def _safetensors_readable(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
        return True
    except Exception:  # noqa: BLE001 - any failure to read the header means the file is broken
        return False


_FIELD_NAMES = {f.name for f in fields(ModelEntry)} - {"name", "base_dir"}


def load_models_toml(path: Path) -> dict[str, ModelEntry]:
    """Read a models.toml; errors name the file, entry and field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: model config not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: expected one or more [models.<name>] tables")
    entries: dict[str, ModelEntry] = {}
    for name, table in tables.items():
        where = f"{path}: [models.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown = set(table) - _FIELD_NAMES
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_FIELD_NAMES)}")
        table = _with_base(name, table, tables, where)
        for required in ("kind", "source"):
            if required not in table:
                raise ConfigError(f"{where}: missing field {required!r}")
        if table["kind"] not in KINDS:
            raise ConfigError(f"{where}: field 'kind' is {table['kind']!r}; expected one of {KINDS}")
        if table.get("image_mode", "separate") not in IMAGE_MODES:
            raise ConfigError(f"{where}: field 'image_mode' must be one of {IMAGE_MODES}")
        if table.get("image_resize", "letterbox") not in IMAGE_RESIZES:
            raise ConfigError(f"{where}: field 'image_resize' must be one of {IMAGE_RESIZES}")
        if "image_resize" in table and table["kind"] != "vlm":
            raise ConfigError(f"{where}: field 'image_resize' only applies to kind = 'vlm'")
        if table.get("scoring", "letters") not in SCORING_MODES:
            raise ConfigError(f"{where}: field 'scoring' must be one of {SCORING_MODES}")
        source = table["source"]
        if not isinstance(source, str) or not source:
            raise ConfigError(f"{where}: field 'source' must be a non-empty string")
        if source.startswith(PRISMATIC) and (table["kind"] != "vlm" or not source.removeprefix(PRISMATIC).strip()):
            raise ConfigError(f"{where}: field 'source' = {source!r}: prismatic:<run folder> names a vlm's folder "
                              "(config.json + checkpoints/latest-checkpoint.pt)")  # fmt: skip
        if table.get("pairs_with") and table["kind"] != "vlm":
            raise ConfigError(f"{where}: field 'pairs_with' only applies to kind = 'vlm'")
        entries[name] = ModelEntry(name=name, base_dir=path.parent.resolve(), **table)
    for entry in list(entries.values()):
        if entry.adapter_dir is not None:
            # Before vs after tuning: the tuned entry and its base both report the attention diagnostic.
            entries[entry.name] = replace(entry, attention_diagnostic=True)
            entries[entry.base] = replace(entries[entry.base], attention_diagnostic=True)
    for entry in entries.values():
        pw = entry.pairs_with
        if pw and pw != "own_tower" and (pw not in entries or entries[pw].kind != "encoder"):
            raise ConfigError(f"{path}: [models.{entry.name}] pairs_with = {pw!r} is not an encoder entry of this file")
    return entries


def _with_base(name: str, table: dict[str, Any], tables: dict[str, Any], where: str) -> dict[str, Any]:
    """A tuned entry's table completed with its base entry's fields (its own fields win)."""
    if "base" not in table and "adapter_dir" not in table:
        return table
    if "base" not in table or "adapter_dir" not in table:
        raise ConfigError(f"{where}: a tuned entry needs both 'base' (an entry name) and 'adapter_dir'")
    base = tables.get(table["base"])
    if not isinstance(base, dict):
        raise ConfigError(f"{where}: base = {table['base']!r} is not an entry of this file")
    if "base" in base:
        raise ConfigError(f"{where}: base = {table['base']!r} is itself a tuned entry; name the original model")
    if base.get("kind") != "vlm":
        raise ConfigError(f"{where}: base = {table['base']!r} must be a vlm entry")
    return {**base, **table}


def select(entries: dict[str, ModelEntry], patterns: str | None) -> dict[str, ModelEntry]:
    """Entries whose names match a comma list of names/globs (all when patterns is empty).

    A VLM's paired encoder is kept even when not named, since the VLM's gates need it.
    """
    if not patterns:
        return dict(entries)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = {n: e for n, e in entries.items() if any(fnmatch.fnmatchcase(n, p) for p in wanted)}
    for entry in list(chosen.values()):
        if entry.base is not None:
            chosen.setdefault(entry.base, entries[entry.base])  # tuned vs original needs the original
    unmatched = [p for p in wanted if not any(fnmatch.fnmatchcase(n, p) for n in entries)]
    if unmatched:
        raise ConfigError(f"--models: no entry matches {unmatched}; known models: {sorted(entries)}")
    return chosen
