"""Everything looked up by name resolves: each task's prompt, readout and data formats are
registered once the task modules are imported, and the one Registry behaves as documented
(a name twice is refused, an unknown name lists the known ones)."""

from __future__ import annotations

import pytest

import plainsight.readouts  # noqa: F401  (imports every readout module, so READOUTS is complete)
from plainsight import data, prompts, render
from plainsight.errors import ConfigError
from plainsight.prompts import PROMPTS
from plainsight.readouts import READOUTS
from plainsight.registry import Registry, UnknownName
from plainsight.tasks import TASKS, TaskSpec, all_tasks


def unresolved_references(spec: TaskSpec) -> list[str]:
    """What ``spec`` names that no registry has: one message per reference (each lists the known names)."""
    problems = []
    if not isinstance(spec.family, str) or not spec.family.strip():
        problems.append(f"{spec.id}: family must be a non-empty string, got {spec.family!r}")
    references = [("prompt_id", PROMPTS, spec.prompt_id), ("readout", READOUTS, spec.readout)]
    references += [("sources", data.SOURCES, name) for name in spec.sources]
    if not spec.sources:
        problems.append(f"{spec.id}: sources is empty; a task reads at least one data format")
    for field, registry, name in references:
        try:
            registry.get(name)
        except UnknownName as exc:
            problems.append(f"{spec.id}: {field}: {exc}")
    return problems


TASK_IDS = sorted(all_tasks())


def test_the_tasks_are_discovered():
    assert len(TASK_IDS) >= 6, TASK_IDS
    assert {"object_3d", "depth", "art_style", "low_level_matching"} <= set(TASK_IDS)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_each_task_names_registered_prompt_readout_and_sources(task_id: str):
    spec = all_tasks()[task_id]
    assert spec.id == task_id and TASKS.get(task_id) is spec
    assert unresolved_references(spec) == []
    assert callable(spec.render) and all(callable(loader) for loader in spec.sources.values())


def test_a_misspelt_readout_is_reported_with_the_known_ones():
    """The check above can fail: the same helper on a task whose readout is misspelt."""
    good = all_tasks()["low_level_matching"]
    misspelt = TaskSpec(id="misspelt", family="correspondence", prompt_id=good.prompt_id, readout="corespondence",
                        sources=good.sources, render=render.no_markers)  # fmt: skip
    (problem,) = unresolved_references(misspelt)
    assert problem.startswith("misspelt: readout: unknown readout 'corespondence'; known: ")
    assert "correspondence" in problem and "odd_one_out" in problem
    assert "misspelt" not in TASKS  # built, never registered


def test_unknown_prompt_source_and_empty_family_are_reported():
    good = all_tasks()["object_3d"]
    loader = good.sources["mochi"]
    bad = TaskSpec(id="bad", family=" ", prompt_id="nope.prompt", readout=good.readout,
                   sources={"mochi": loader, "nodata": loader}, render=good.render)  # fmt: skip
    problems = unresolved_references(bad)
    assert len(problems) == 3, problems
    assert "family must be a non-empty string" in problems[0]
    assert "unknown prompt 'nope.prompt'; known: " in problems[1] and "plainsight.object_3d" in problems[1]
    assert "unknown data source 'nodata'; known: " in problems[2] and "mochi" in problems[2]


def test_prompts_readouts_and_sources_are_registered_under_their_own_names():
    assert all(prompt.id == name for name, prompt in PROMPTS.items())
    assert all(isinstance(readout, plainsight.readouts.Readout) for _, readout in READOUTS.items())
    assert all(isinstance(where, str) and where for _, where in data.SOURCES.items())


# --- the Registry ------------------------------------------------------------------------------------------


def test_a_name_registered_twice_is_refused_naming_the_kind():
    colours = Registry[int]("colour")
    assert colours.register("red", 1) == 1
    with pytest.raises(ValueError, match=r"colour 'red' registered twice"):
        colours.register("red", 2)
    assert colours.get("red") == 1  # the first one stays


def test_an_unknown_name_is_a_config_error_listing_the_known_names():
    colours = Registry[int]("colour")
    colours.register("red", 1)
    colours.register("blue", 2)
    with pytest.raises(UnknownName) as caught:
        colours.get("gren")
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, LookupError)
    assert str(caught.value) == "unknown colour 'gren'; known: blue, red"
    with pytest.raises(UnknownName, match=r"unknown colour 'x'; known: \(none\)"):
        Registry[int]("colour").get("x")


def test_decorator_form_names_and_unregister():
    handlers = Registry("handler")

    @handlers.register("shout")
    def shout(text: str) -> str:
        return text.upper()

    assert shout("a") == "A" and handlers.get("shout") is shout  # the decorator returns the function itself
    handlers.register("whisper", str.lower)
    assert handlers.names() == ["shout", "whisper"] == list(handlers)
    assert handlers.items() == [("shout", shout), ("whisper", str.lower)]
    assert "shout" in handlers and "yell" not in handlers and len(handlers) == 2
    handlers.unregister("shout")
    handlers.unregister("never-there")  # no error
    assert handlers.names() == ["whisper"]
    handlers.register("shout", shout)  # free again


def test_the_suite_registries_are_registries():
    from plainsight.models.backends import BACKENDS
    from plainsight.models.families import FAMILIES

    kinds = {TASKS: "task", PROMPTS: "prompt", READOUTS: "readout", data.SOURCES: "data source"}
    kinds |= {BACKENDS: "model backend", FAMILIES: "VLM family"}
    for registry, kind in kinds.items():
        assert isinstance(registry, Registry) and registry.kind == kind
    assert prompts.get("plainsight.object_3d") is PROMPTS.get("plainsight.object_3d")


# --- model backends and VLM family profiles ----------------------------------------------------------------


def test_backends_are_named_kind_colon_scheme_and_cover_the_shipped_models():
    import plainsight.models.loading  # noqa: F401  (imports every backend module)
    from plainsight.models.backends import BACKENDS, Backend, backend_name
    from plainsight.models.registry import load_models_toml

    assert {"encoder:pixels", "encoder:hf", "encoder:timm", "vlm:hf", "vlm:double", "vlm:prismatic"} <= set(BACKENDS)
    for name, backend in BACKENDS.items():
        kind, _, scheme = name.partition(":")
        assert kind in ("encoder", "vlm") and scheme, name
        assert isinstance(backend, Backend) and callable(backend.load) and callable(backend.preprocess_spec), name
    assert backend_name("vlm", "double:oracle") == "vlm:double"
    assert backend_name("encoder", "pixels") == "encoder:pixels"
    with pytest.raises(UnknownName, match=r"unknown model backend 'vlm:tims'; known: .*vlm:double"):
        BACKENDS.get(backend_name("vlm", "tims:x"))

    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "fixtures" / "models.toml"
    for entry in load_models_toml(shipped).values():
        assert entry.backend in BACKENDS, (entry.name, entry.backend)


def test_family_profiles_are_registered_by_model_type():
    from plainsight.models.families import FAMILIES, PROMPT_FORMATS, FamilyProfile, profile_for

    assert {"llava", "qwen2_vl", "idefics3", "paligemma"} <= set(FAMILIES)
    for model_type, profile in FAMILIES.items():
        assert isinstance(profile, FamilyProfile) and profile.model_type == model_type
        assert profile.prompt_format in PROMPT_FORMATS
        assert profile_for(model_type) is profile
        for component in ("llm", "projector", "vision"):
            assert profile.component_paths(component), (model_type, component)
    generic = profile_for("some_new_vlm")
    assert generic.model_type == "some_new_vlm" and "some_new_vlm" not in FAMILIES
    assert not generic.own_tower and not generic.probe_grid
    with pytest.raises(UnknownName, match="unknown VLM family 'some_new_vlm'"):
        FAMILIES.get("some_new_vlm")
