"""Bad configuration and bad data files: a clear message naming the file (and table/key, row
or field), never a bare traceback or a silently wrong number (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from plainsight.errors import ConfigError
from plainsight.gates import check_models, load_thresholds

# --- thresholds.toml --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ('[defaults.vlm]\nmin_accuracy = "high"\n', "[defaults.vlm]: min_accuracy must be a number"),
        ("[defaults.vlm]\nmin_accuracy = 1.5\n", "[defaults.vlm]: min_accuracy = 1.5 is out of range"),
        ('[defaults.vision]\nabove_chance = "yes"\n', "[defaults.vision]: above_chance must be true or false"),
        ("[tasks.depth.vlm]\nmax_gap_to_vision = true\n", "[tasks.depth.vlm]: max_gap_to_vision must be a number, not bool"),
        ("[models.m]\nmin_tv_to_blind = false\n", "[models.m]: min_tv_to_blind must be a number, not bool"),
        ('[baseline]\nalpha = "0.05"\n', "[baseline]: alpha must be a number"),
        ("[baseline]\nalpha = 0\n", "[baseline]: alpha = 0 is out of range (0"),
        ("[baseline]\ntolerance = -0.1\n", "[baseline]: tolerance = -0.1 is out of range"),
        ("[baseline]\ntolerence = 0.1\n", "[baseline]: unknown key 'tolerence'"),
        ('[models.m.depth]\nexpect = "fail"\nreason = "x"\n', '[models.m.depth]: expect must be "xfail"'),
        ('[models.m.depth]\nexpect = "xfail"\nreason = 3\n', "[models.m.depth]: reason must be a string"),
        ("[tasks.art_styl.vision]\nabove_chance = true\n", "[tasks.art_styl]: unknown task 'art_styl'; known: art_style"),
        ("[models.m.art_styl]\nabove_chance = false\n", "[models.m.art_styl]: unknown task 'art_styl'; known: art_style"),
        ("[default.vlm]\nabove_chance = true\n", "unknown top-level key or table 'default'"),
        ("[defaults.vlm.depth]\nabove_chance = true\n", "[defaults.vlm].depth: unexpected table"),
        ('other_models = "m"\n', "other_models must be a list"),
    ],
)
def test_bad_threshold_values_name_file_table_and_key(tmp_path: Path, text: str, message: str):
    p = tmp_path / "thresholds.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_thresholds(p)
    assert str(p) in str(err.value) and message in str(err.value), str(err.value)


def test_thresholds_naming_unknown_models_are_refused_unless_exempt(tmp_path: Path):
    p = tmp_path / "thresholds.toml"
    p.write_text("[models.pixel.depth]\nabove_chance = false\n[models.clip]\nmin_accuracy = 0.3\n")
    thresholds = load_thresholds(p)
    check_models(thresholds, ["pixel", "clip", "dino"])  # all known: no error
    with pytest.raises(ConfigError) as err:
        check_models(thresholds, ["pixels", "clip"])
    message = str(err.value)
    assert str(p) in message and "[models.pixel]" in message and "[models.clip]" not in message
    assert "known models: clip, pixels" in message and "other_models" in message

    p.write_text('other_models = ["pixel"]\n[models.pixel.depth]\nabove_chance = false\n')
    check_models(load_thresholds(p), ["pixels", "clip"])  # exempt: no error


def test_shipped_thresholds_stay_valid():
    repo = Path(__file__).resolve().parents[1]
    load_thresholds(repo / "fixtures" / "thresholds.toml")
