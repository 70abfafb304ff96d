"""Shared helpers for the suite's own tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HF_CONFIGS = REPO.parent / "shared" / "hf-configs"
REQUIRE_ENV = "PLAINSIGHT_REQUIRE_HF_CONFIGS"


def hf_config_dir(name: str) -> Path:
    """The real checkpoint files of `name` (e.g. "llava-hf__llava-1.5-7b-hf") from ../shared/hf-configs.

    Skips when absent, unless $PLAINSIGHT_REQUIRE_HF_CONFIGS is set (CI sets it when the
    files are present), in which case a missing folder is a failure.
    """
    folder = HF_CONFIGS / name
    if not (folder / "config.json").is_file() and not (folder / "preprocessor_config.json").is_file():
        message = f"{folder} not found: real checkpoint files come from ../shared/hf-configs beside the repo"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(message + f" (${REQUIRE_ENV} is set)")
        pytest.skip(message)
    return folder


@pytest.fixture(scope="session")
def embedded_data() -> Path:
    folder = REPO / "fixtures" / "data"
    if not (folder / "ATTRIBUTION.md").is_file():
        pytest.fail(f"{folder} is missing: run `plainsight fixtures build`")
    return folder


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-repeats",
        type=int,
        default=3,
        help="tests/benchmarks: paired repetitions per benchmark (default 3, the suite's run; the README's numbers use 15)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, split the cores between the workers: torch threads that outnumber the cores only contend
    (on 2 cores, two workers of 2 threads each made torch-heavy tests up to 3x slower). The environment
    variable reaches the `pytest evals` subprocesses that tests start."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if not workers:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
