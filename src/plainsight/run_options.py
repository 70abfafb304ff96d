"""What a run was asked for (the command line's ``--data-root``, ``--seed``, ``--device``…), as one value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RunOptions:
    """The options every role run of a session shares; the plugin builds it from the command line."""

    data_root: Path | None = None
    source: str | None = None  # dataset format to prefer where a task has several (tasks/sources.py)
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    scoring: str | None = None  # overrides every VLM entry's scoring mode
    probe_recipe: str = "auto"  # depth probe recipe: auto (full on CUDA, small on CPU), full, small
    cache_dir: Path = Path(".plainsight-cache")  # trained probes
    task_options: dict[str, dict[str, str]] = field(default_factory=dict)  # task → {option: value} (--task-option)
    shard: tuple[int, int] | None = None  # (i, n): this runner scores every n-th item from the (i-1)-th (--shard i/n)
    protocol: str = "default"  # protocols.py: which formats each task prefers (--protocol)
