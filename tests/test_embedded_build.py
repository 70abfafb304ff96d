"""`plainsight fixtures build` is deterministic: regenerating gives the committed bytes."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
from PIL import Image

from plainsight.data.hpatches import FOLDER, read_homography
from plainsight.embedded import build_all
from plainsight.embedded.hpatches_twin import build_hpatches_twin
from plainsight.geometry import apply_homography

REPO = Path(__file__).resolve().parents[1]


def test_rebuild_matches_the_committed_benchmark(tmp_path: Path, embedded_data: Path):
    summary = build_all(tmp_path, seed=0)
    assert summary[FOLDER]["sequences"] == 10 and summary[FOLDER]["items"]["low_level_matching"] >= 100
    assert summary[FOLDER]["files"] == 110 and 1_000_000 < summary[FOLDER]["bytes"] < 5_000_000
    assert summary["SPair-71k"]["items"]["semantic_correspondence"] >= 100
    assert summary["FunKPoint"]["items"]["functional_correspondence"] >= 100
    assert min(summary["BLINK"]["rows"].values()) >= 50
    assert summary["MOCHI"]["trials"]["shapenet"] + summary["MOCHI"]["trials"]["shapegen"] >= 100
    assert summary["BLINK/Art_Style"]["rows"] >= 100
    assert sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) < 25_000_000  # DESIGN's budget
    committed = sorted(p.relative_to(embedded_data) for p in embedded_data.rglob("*") if p.is_file())
    rebuilt = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert committed == rebuilt
    for rel in committed:
        a, b = embedded_data / rel, tmp_path / rel
        if rel.suffix == ".ppm":
            assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))), rel
        else:
            assert filecmp.cmp(a, b, shallow=False), rel
    assert "grace_hopper" in (tmp_path / "ATTRIBUTION.md").read_text()


def test_another_seed_changes_the_data(tmp_path: Path, embedded_data: Path):
    build_hpatches_twin(tmp_path, seed=1)
    seq = f"{FOLDER}/v_astronaut"
    assert (tmp_path / seq / "H_1_2").read_text() != (embedded_data / seq / "H_1_2").read_text()


def test_committed_homographies_move_content_to_where_they_say(embedded_data: Path):
    seq = embedded_data / FOLDER / "v_coffee"
    one = np.asarray(Image.open(seq / "1.ppm").convert("L"), dtype=float)
    for k in range(2, 7):
        other = np.asarray(Image.open(seq / f"{k}.ppm").convert("L"), dtype=float)
        H = read_homography(seq / f"H_1_{k}")
        ys, xs = np.mgrid[20:100:4, 30:130:4]
        pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
        mapped = np.round(apply_homography(H, pts)).astype(int)
        ok = (mapped[:, 0] >= 0) & (mapped[:, 0] < 160) & (mapped[:, 1] >= 0) & (mapped[:, 1] < 120)
        src = one[pts[ok, 1].astype(int), pts[ok, 0].astype(int)]
        matched = np.abs(other[mapped[ok, 1], mapped[ok, 0]] - src).mean()
        shuffled = np.abs(other[mapped[ok, 1], mapped[ok, 0]] - np.roll(src, 7)).mean()
        assert matched < 0.5 * shuffled, (k, matched, shuffled)


def test_tiny_models_rebuild_identically(tmp_path: Path):
    from plainsight.models.tiny import build_tiny_dinov2, build_tiny_llava

    for name, build in (("tiny-llava", build_tiny_llava), ("tiny-dinov2", build_tiny_dinov2)):
        out = build(tmp_path / name)
        committed = REPO / "fixtures" / "models" / name
        names = sorted(p.name for p in committed.iterdir())
        assert names == sorted(p.name for p in out.iterdir())
        for n in names:
            assert filecmp.cmp(committed / n, out / n, shallow=False), f"{name}/{n}"
