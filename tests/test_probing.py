"""Layer-wise probing: image-token states map back to the patch grid; one point per LLM layer plus pre-LLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from families import real_config
from PIL import Image

from plainsight.models.vlms import VLMRequest
from plainsight.probing import image_token_states

REPO = Path(__file__).resolve().parents[1]


def test_pre_llm_states_are_the_projected_patch_grid():
    vlm = real_config("llava-hf__llava-1.5-7b-hf")
    images = [
        Image.fromarray(np.random.default_rng(k).integers(0, 255, (120, 160, 3), dtype=np.uint8)) for k in range(2)
    ]
    states = image_token_states(vlm, VLMRequest(images, "Which point?", ("A", "B", "C", "D")))
    assert len(states) == vlm.model.config.text_config.num_hidden_layers + 1
    pixels = vlm.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        projected = vlm.model.get_image_features(
            pixel_values=pixels, vision_feature_layer=-2, vision_feature_select_strategy="default"
        ).pooler_output
    for k in range(2):
        grid = states[0][k]  # (C, 24, 24)
        assert grid.shape[1:] == (24, 24)
        assert torch.allclose(grid.permute(1, 2, 0).reshape(576, -1), projected[k].float(), atol=1e-4)
    assert not torch.allclose(states[0][0], states[0][1])


def test_probe_run_writes_one_point_per_layer(tmp_path: Path):
    report = tmp_path / "report"
    cmd = [
        sys.executable, "-m", "pytest", str(REPO / "evals"), "-q", "-p", "no:cacheprovider", "-m", "probe",
        "-k", "semantic_correspondence or art_style", f"--report-dir={report}", "--limit=12",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = json.loads((report / "results.json").read_text())["results"]
    probes = {r["task"]: r for r in records if r["role"] == "probe"}
    assert set(probes) == {"semantic_correspondence", "art_style"}  # the correspondence and the Gram readouts
    layers = json.loads((REPO / "fixtures" / "models" / "tiny-llava" / "config.json").read_text())["text_config"][
        "num_hidden_layers"
    ]
    for probe in probes.values():
        assert [p["layer"] for p in probe["layer_series"]] == list(range(layers + 1))
        assert probe["layer_series"][0]["point"] == "pre-LLM" and probe["n"] == 12
        assert all(0 <= p["accuracy"] <= 1 for p in probe["layer_series"])
    assert "Layer-wise readout" in (report / "report.md").read_text()
