"""models.toml parsing and selection."""

from pathlib import Path

import pytest

from plainsight.errors import ConfigError
from plainsight.models.registry import load_models_toml, select

GOOD = """
[models.enc]
kind = "encoder"
source = "pixels"

[models.vlm-a]
kind = "vlm"
source = "./local/vlm"
image_mode = "side_by_side"
pairs_with = "enc"
"""


def test_parses_entries_and_resolves_local_paths(tmp_path: Path):
    p = tmp_path / "models.toml"
    p.write_text(GOOD)
    entries = load_models_toml(p)
    assert entries["vlm-a"].pairs_with == "enc" and entries["vlm-a"].image_mode == "side_by_side"
    assert entries["vlm-a"].resolved_source() == str(tmp_path / "local" / "vlm")
    assert entries["enc"].resolved_source() == "pixels"
    assert entries["enc"].trust_remote_code is False


@pytest.mark.parametrize(
    "text, message",
    [
        ('[models.x]\nkind = "encoder"\nsource = "pixels"\nfeature_layr = 3\n', "unknown field(s) ['feature_layr']"),
        ('[models.x]\nsource = "pixels"\n', "missing field 'kind'"),
        ('[models.x]\nkind = "llm"\nsource = "p"\n', "field 'kind'"),
        ('[models.x]\nkind = "vlm"\nsource = "p"\npairs_with = "nope"\n', "pairs_with = 'nope'"),
        ('[models.x]\nkind = "vlm"\nsource = "p"\nimage_mode = "tiles"\n', "image_mode"),
    ],
)
def test_errors_name_file_entry_and_field(tmp_path: Path, text: str, message: str):
    p = tmp_path / "models.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_models_toml(p)
    assert message in str(err.value) and "[models.x]" in str(err.value) or message in str(err.value)
    assert str(p) in str(err.value)


def test_select_by_names_and_globs(tmp_path: Path):
    p = tmp_path / "models.toml"
    p.write_text(GOOD)
    entries = load_models_toml(p)
    assert set(select(entries, "vlm-*")) == {"vlm-a"}
    assert set(select(entries, "enc, vlm-a")) == {"enc", "vlm-a"}
    assert set(select(entries, None)) == {"enc", "vlm-a"}
    with pytest.raises(ConfigError, match="no entry matches"):
        select(entries, "llava*")


def test_shipped_models_toml_loads():
    entries = load_models_toml(Path(__file__).resolve().parents[1] / "fixtures" / "models.toml")
    assert {"pixels", "tiny-dinov2", "tiny-llava"} <= set(entries)
