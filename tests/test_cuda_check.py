"""scripts/cuda_check.py runs on the CPU too, so the GPU session's one prepared script has run before it gets there."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cuda_check.py"
ARGS = ["--device", "cpu", "--no-evals", "--items", "24", "--dtypes", "bfloat16"]


@pytest.fixture(scope="module")
def cuda_check():
    spec = importlib.util.spec_from_file_location("cuda_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_check_passes_on_the_cpu_path(cuda_check, capsys):
    assert cuda_check.main(ARGS) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "all checks passed" in out
    assert "ok   bfloat16: tiny-llava vlm parameters on cpu torch.bfloat16" in out
    assert "ok   float32: batched (8) vs one at a time, " in out


def test_a_model_left_in_float32_fails_the_placement_check(cuda_check, capsys, monkeypatch):
    import plainsight.runner

    monkeypatch.setattr(plainsight.runner, "resolve_dtype", lambda requested, device: "float32")
    assert cuda_check.main(ARGS) == 1
    out = capsys.readouterr().out
    assert "FAIL bfloat16: tiny-llava vlm parameters on cpu torch.float32" in out


def test_a_batch_that_loses_its_attention_mask_fails_the_batching_check(cuda_check, capsys, monkeypatch):
    from plainsight.models.vlms import HFVLM

    inputs = HFVLM._inputs

    def without_mask(self, requests, forced):
        prepared = inputs(self, requests, forced)
        prepared["attention_mask"] = torch.ones_like(prepared["attention_mask"])  # padding attended to
        return prepared

    monkeypatch.setattr(HFVLM, "_inputs", without_mask)
    assert cuda_check.main(ARGS) == 1
    assert "FAIL float32: batched (8) vs one at a time" in capsys.readouterr().out
