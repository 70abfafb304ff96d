"""`plainsight adapt`: train/eval split, prompt prefixes, per-component LoRA, adapter folders, tuned entries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

# Loaded before any pytester test: pytester drops the modules a test imported when it ends, and
# transformers' lazy modules (and torch's operator registrations) cannot be imported a second time.
from peft import PeftModel  # noqa: F401
from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaForConditionalGeneration  # noqa: F401

from plainsight.adapt import AdaptPlan, run_adapt, split_items, trainable_parameters
from plainsight.errors import ConfigError, ModelUnavailable
from plainsight.items import Item, ItemImage
from plainsight.models.adapters import apply_adaptation, read_adaptation
from plainsight.models.components import component_linear_names
from plainsight.models.prefix import PromptPrefix
from plainsight.models.registry import load_models_toml
from plainsight.models.vlms import HFVLM, VLMRequest
from plainsight.runner import Runner, RunOptions

REPO = Path(__file__).resolve().parents[1]
TINY_LLAVA = REPO / "fixtures" / "models" / "tiny-llava"


def _item(item_id: str) -> Item:
    return Item(id=item_id, task="depth", images=[ItemImage(root=Path("."), path="x.png", size=(4, 4))],
                prompt="?", prompt_id="test", choices=("A", "B"), gold="A")  # fmt: skip


def _models_toml(folder: Path, paired: bool = True, **tuned: str) -> Path:
    text = f"""
[models.tiny-dinov2]
kind = "encoder"
source = "{REPO / "fixtures" / "models" / "tiny-dinov2"}"
smoke = true

[models.tiny-llava]
kind = "vlm"
source = "{TINY_LLAVA}"
image_mode = "side_by_side"
smoke = true
"""
    if paired:
        text += 'pairs_with = "tiny-dinov2"\n'
    for name, adapter in tuned.items():
        text += f'\n[models.{name}]\nbase = "tiny-llava"\nadapter_dir = "{adapter}"\n'
    path = folder / "models.toml"
    path.write_text(text)
    return path


# -- the split ----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(ids=st.sets(st.text("abcdef0123456789-", min_size=1, max_size=8), min_size=2, max_size=40), data=st.data())
def test_split_is_disjoint_complete_and_independent_of_order(ids, data):
    items = [_item(i) for i in sorted(ids)]
    n_train = data.draw(st.integers(1, len(items) - 1))
    seed = data.draw(st.integers(0, 5))
    train, held = split_items(items, n_train, seed)
    assert len(train) == n_train and len(held) == len(items) - n_train
    assert not {it.id for it in train} & {it.id for it in held}
    assert {it.id for it in train} | {it.id for it in held} == set(ids)
    shuffled = data.draw(st.permutations(items))
    assert {it.id for it in split_items(list(shuffled), n_train, seed)[0]} == {it.id for it in train}


def test_split_refuses_to_leave_nothing_out():
    items = [_item(str(i)) for i in range(5)]
    with pytest.raises(ConfigError, match="leave at least one out"):
        split_items(items, 5, 0)


def test_plan_checks_its_fields():
    with pytest.raises(ConfigError, match="--tokens"):
        AdaptPlan(method="prompt", component="prefix")
    with pytest.raises(ConfigError, match="--rank"):
        AdaptPlan(method="lora", component="llm")
    with pytest.raises(ConfigError, match="component"):
        AdaptPlan(method="lora", component="decoder", rank=4)


# -- prompt prefixes -------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(pads=st.lists(st.integers(0, 4), min_size=1, max_size=4), n=st.integers(1, 3))
def test_prefix_slots_go_after_each_rows_left_padding(pads, n):
    length = max(pads) + 3
    ids = torch.tensor([[0] * p + list(range(10, 10 + length - p)) for p in pads])
    mask = (ids != 0).long()
    types = torch.ones_like(ids)
    prefix = PromptPrefix(torch.zeros(n, 4), slot_token_id=99)
    out = prefix.insert(
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "pixel_values": torch.ones(2)}
    )
    for row, p in enumerate(pads):
        expected = [0] * p + [99] * n + list(range(10, 10 + length - p))
        assert out["input_ids"][row].tolist() == expected
        assert out["attention_mask"][row].tolist() == [0] * p + [1] * (n + length - p)
        assert out["token_type_ids"][row].tolist() == [1] * p + [0] * n + [1] * (length - p)
        assert prefix.slots[row].nonzero().flatten().tolist() == list(range(p, p + n))
    assert out["pixel_values"].tolist() == [1.0, 1.0]  # not row-aligned: untouched


@pytest.fixture(scope="module")
def tiny_vlm() -> HFVLM:
    return HFVLM.from_pretrained("tiny-llava", str(TINY_LLAVA))


def _requests(n: int = 3) -> list[VLMRequest]:
    from PIL import Image

    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 120)]
    return [VLMRequest([Image.new("RGB", (40, 20), colours[i % 4])], f"Which one, number {i}?", ("A", "B"))
            for i in range(n)]  # fmt: skip


def test_prefix_embeddings_act_exactly_like_those_tokens_in_the_prompt(tiny_vlm: HFVLM):
    """Slots whose learned vectors equal token t's embedding give the logits of a prompt starting with t."""
    table = tiny_vlm.model.get_input_embeddings().weight
    token = tiny_vlm.tokenizer.convert_tokens_to_ids("<s>")
    prefix = PromptPrefix(table[[token, token]].detach(), slot_token_id=tiny_vlm.tokenizer.pad_token_id)
    requests = _requests()
    with torch.inference_mode():
        tiny_vlm.prefix = prefix.attach(tiny_vlm.model)
        with_prefix = tiny_vlm.answer_logits(requests)
        prefix.detach_hook()
        tiny_vlm.prefix = None
        # The same rows built by hand: the two tokens written into the ids where the slots go.
        inputs = tiny_vlm._inputs(requests, tiny_vlm.letter_tokens(("A", "B")).forced)
        manual = PromptPrefix(torch.zeros(2, 1), slot_token_id=token).insert(inputs)
        by_hand = tiny_vlm.model(**manual).logits[:, -1, :]
    torch.testing.assert_close(with_prefix, by_hand, rtol=1e-5, atol=1e-5)
    plain = tiny_vlm.answer_logits(requests)
    assert not torch.allclose(plain, with_prefix)  # the prefix does change the answer logits


def test_prefix_round_trips_through_safetensors(tmp_path: Path):
    prefix = PromptPrefix(torch.randn(5, 8), slot_token_id=7)
    prefix.save(tmp_path)
    loaded = PromptPrefix.load(tmp_path)
    assert loaded.slot_token_id == 7 and torch.equal(loaded.embeddings, prefix.embeddings)


# -- components ------------------------------------------------------------------------------------
def test_llava_components_are_disjoint_and_where_transformers_puts_them(tiny_vlm: HFVLM):
    names = {c: set(component_linear_names(tiny_vlm.model, c)) for c in ("llm", "projector", "vision")}
    assert names["projector"] == {"model.multi_modal_projector.linear_1", "model.multi_modal_projector.linear_2"}
    assert all(n.startswith("model.language_model.layers.") for n in names["llm"])
    assert all(n.startswith("model.vision_tower.") for n in names["vision"])
    assert "lm_head" not in names["llm"]
    assert not (names["llm"] & names["vision"]) and not (names["projector"] & names["vision"])
    assert any(n.endswith("self_attn.q_proj") for n in names["llm"]) and any(
        n.endswith("mlp.fc1") for n in names["vision"]
    )


@pytest.mark.parametrize("folder, projector", [
    ("Qwen__Qwen2-VL-2B-Instruct", "model.visual.merger."),
    ("HuggingFaceTB__SmolVLM-256M-Instruct", "model.connector."),
])  # fmt: skip
def test_other_families_components(folder: str, projector: str):
    from conftest import hf_config_dir
    from plainsight.models.tiny import shrink_vlm_config

    config = shrink_vlm_config(hf_config_dir(folder))
    model = AutoModelForImageTextToText.from_config(config)
    proj = component_linear_names(model, "projector")
    vision = component_linear_names(model, "vision")
    llm = component_linear_names(model, "llm")
    assert proj and all(n.startswith(projector) for n in proj)
    assert not set(proj) & set(vision), "the projector must not be tuned as part of the vision tower"
    assert llm and not set(llm) & (set(vision) | set(proj))


# -- adapters ------------------------------------------------------------------------------------
def _adapt(tmp: Path, name: str, **plan) -> tuple[Path, dict]:
    entries = load_models_toml(_models_toml(tmp))
    out = tmp / name
    defaults = dict(steps=6, batch_size=8, train_items=24, lr=5e-3, seed=0)
    record = run_adapt(entries["tiny-llava"], "depth", AdaptPlan(**{**defaults, **plan}), out)
    return out, record


@pytest.mark.parametrize("component", ["llm", "projector", "vision"])
def test_lora_changes_only_its_component(tmp_path: Path, component: str):
    out, record = _adapt(tmp_path, f"lora-{component}", method="lora", component=component, rank=4)
    assert record["n_train"] == 24 and record["trainable_parameters"] > 0
    base = HFVLM.from_pretrained("base", str(TINY_LLAVA))
    tuned = apply_adaptation(HFVLM.from_pretrained("tuned", str(TINY_LLAVA)), out)
    before = dict(base.model.named_parameters())
    changed = {n for n, p in tuned.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "training changed nothing"
    prefix = {
        "llm": "model.language_model.",
        "projector": "model.multi_modal_projector.",
        "vision": "model.vision_tower.",
    }
    assert all(n.startswith(prefix[component]) for n in changed), changed


def test_adapter_folder_reloads_to_the_trained_model(tmp_path: Path):
    entries = load_models_toml(_models_toml(tmp_path))
    plan = AdaptPlan(method="lora", component="llm", rank=4, steps=5, train_items=24, lr=5e-3)
    vlm = HFVLM.from_pretrained("tiny-llava", str(TINY_LLAVA))
    trainable_parameters(vlm, plan)
    with torch.no_grad():  # stand-in for training: non-zero LoRA B so the adapter matters
        for name, param in vlm.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    from plainsight.adapt import save
    from plainsight.models.adapters import ADAPT_FILE, base_signature

    save(vlm, plan, tmp_path / "a")
    meta = {"schema": "plainsight.adapt/1", "method": "lora", "component": "llm", "task": "depth", "train_items": [],
            "base_signature": base_signature(HFVLM.from_pretrained("b", str(TINY_LLAVA)).model)}  # fmt: skip
    (tmp_path / "a" / ADAPT_FILE).write_text(json.dumps(meta))
    requests = _requests(4)
    with torch.inference_mode():
        live = vlm.answer_logits(requests)
    reloaded = apply_adaptation(HFVLM.from_pretrained("tuned", str(TINY_LLAVA)), tmp_path / "a")
    with torch.inference_mode():
        torch.testing.assert_close(reloaded.answer_logits(requests), live, rtol=1e-4, atol=1e-4)
        base = HFVLM.from_pretrained("base", str(TINY_LLAVA)).answer_logits(requests)
    assert not torch.allclose(base, live, atol=1e-3)
    del entries


def test_prompt_tuning_trains_only_the_prefix_and_reloads(tmp_path: Path):
    out, record = _adapt(tmp_path, "prompt", method="prompt", component="prefix", tokens=3)
    assert record["trainable_parameters"] == 3 * 32  # 3 vectors of the LLM's width
    tuned = apply_adaptation(HFVLM.from_pretrained("tuned", str(TINY_LLAVA)), out)
    base = HFVLM.from_pretrained("base", str(TINY_LLAVA))
    start = PromptPrefix.initialised_from_vocabulary(base.model, 3, 0, seed=0).embeddings
    assert (tuned.prefix.embeddings - start).abs().max() > 1e-3, "the prefix did not train"
    assert all(torch.equal(p, q) for p, q in zip(tuned.model.parameters(), base.model.parameters()))
    with torch.inference_mode():
        assert not torch.allclose(tuned.answer_logits(_requests()), base.answer_logits(_requests()))


def test_same_seed_same_adapter(tmp_path: Path):
    first, a = _adapt(tmp_path, "one", method="lora", component="llm", rank=4)
    second, b = _adapt(tmp_path, "two", method="lora", component="llm", rank=4)
    assert a["loss"] == b["loss"] and a["train_items"] == b["train_items"]
    assert (first / "adapter_model.safetensors").read_bytes() == (second / "adapter_model.safetensors").read_bytes()


def test_adapter_of_another_base_is_refused(tmp_path: Path):
    out, _ = _adapt(tmp_path, "lora", method="lora", component="llm", rank=4)
    from plainsight.models.tiny import build_tiny_llava

    other = build_tiny_llava(tmp_path / "other-llava", seed=1)
    with pytest.raises(ConfigError, match="another base model"):
        apply_adaptation(HFVLM.from_pretrained("other", str(other)), out)


def test_missing_adapter_names_the_command(tmp_path: Path):
    with pytest.raises(ModelUnavailable, match="plainsight adapt"):
        read_adaptation(tmp_path / "nowhere")


# -- tuned entries in a run ------------------------------------------------------------------------
def test_tuned_entry_takes_its_base_fields_and_turns_on_the_diagnostic(tmp_path: Path):
    entries = load_models_toml(_models_toml(tmp_path, **{"tiny-llava-lora": "adapters/x"}))
    tuned, base = entries["tiny-llava-lora"], entries["tiny-llava"]
    assert tuned.kind == "vlm" and tuned.source == base.source and tuned.image_mode == "side_by_side"
    assert tuned.pairs_with == "tiny-dinov2" and tuned.resolved_adapter_dir() == (tmp_path / "adapters" / "x").resolve()
    assert tuned.attention_diagnostic and base.attention_diagnostic


@pytest.mark.parametrize("table, message", [
    ('[models.t]\nbase = "tiny-llava"\n', "needs both"),
    ('[models.t]\nbase = "nope"\nadapter_dir = "x"\n', "not an entry"),
    ('[models.t]\nbase = "tiny-dinov2"\nadapter_dir = "x"\n', "must be a vlm"),
])  # fmt: skip
def test_bad_tuned_entries(tmp_path: Path, table: str, message: str):
    path = _models_toml(tmp_path)
    path.write_text(path.read_text() + table)
    with pytest.raises(ConfigError, match=message):
        load_models_toml(path)


def test_runner_holds_training_items_out_of_the_run(tmp_path: Path):
    entries = load_models_toml(_models_toml(tmp_path))
    runner = Runner(RunOptions(), entries)
    every = runner.items("depth")
    trained = frozenset(it.id for it in every[:60])
    held = Runner(RunOptions(), entries, training_items={"depth": {"tuned": trained}}).items("depth")
    assert len(held) == len(every) - 60 and not {it.id for it in held} & trained
    assert Runner(RunOptions(), entries, training_items={"depth": {"tuned": trained}}).items("art_style")


pytest_plugins = ["pytester"]


def test_evals_show_tuned_and_original_side_by_side(pytester: pytest.Pytester, tmp_path: Path):
    """pytest evals with a tuned entry: only held-out items anywhere in the run, a paired comparison, attention."""
    out, record = _adapt(tmp_path, "lora", method="lora", component="llm", rank=4)
    toml = _models_toml(pytester.path, paired=False, **{"tiny-llava-lora": str(out)})
    shutil.copy(REPO / "evals" / "test_depth.py", pytester.path / "test_depth.py")
    (pytester.path / "thresholds.toml").write_text("[defaults.vlm]\nabove_chance = true\n")
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--model-config={toml}", f"--thresholds={pytester.path / 'thresholds.toml'}",
        f"--report-dir={report}", "-k", "depth", "--models", "tiny-llava-lora",  # the original comes along
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    run = json.loads((report / "results.json").read_text())
    assert run["training_items_left_out"] == {"depth": {"tiny-llava-lora": 24}}
    results = run["results"]
    recs = {(r["model"], r["role"]): r for r in results}
    train_ids = set(record["train_items"])
    lines = [json.loads(line) for line in (report / "items.jsonl").read_text().splitlines()]
    assert lines and not {line["item"] for line in lines} & train_ids, "a training item was evaluated"
    assert all(r["n_items"] == 160 - 24 for r in results if r["role"] != "probe")
    tuned = recs[("tiny-llava-lora", "vlm")]
    assert (
        tuned["tuning"]["method"] == "lora" and tuned["tuning"]["component"] == "llm" and tuned["tuning"]["rank"] == 4
    )
    versus = tuned["vs_base"]
    assert versus["base"] == "tiny-llava" and versus["paired_n"] == 136
    original = recs[("tiny-llava", "vlm")]
    assert versus["base_accuracy"] == original["accuracy"] and versus["accuracy"] == tuned["accuracy"]
    # the paired counts re-derive from items.jsonl
    answers = {(line["model"], line["role"], line["item"]): line["correct"] for line in lines}
    only_tuned = sum(answers[("tiny-llava-lora", "vlm", i)] and not answers[("tiny-llava", "vlm", i)]
                     for (m, r, i) in answers if m == "tiny-llava" and r == "vlm")  # fmt: skip
    assert versus["only_tuned_correct"] == only_tuned
    # the attention diagnostic ran for both (two LLM layers each), per item in items.jsonl too
    assert len(versus["image_attention"]) == 2 and len(versus["base_image_attention"]) == 2
    assert all(0.0 <= x <= 1.0 for x in versus["image_attention"] + versus["base_image_attention"])
    assert all(
        len(line["image_attention"]) == 2 for line in lines if line["role"] == "vlm" and "llava" in line["model"]
    )
    text = (report / "report.md").read_text()
    assert "## Tuned vs original (same held-out items)" in text
    assert "| depth | tiny-llava-lora | tiny-llava | lora | llm |" in text
    html = (report / "report.html").read_text()
    assert (
        "<h3>Tuned vs original (same held-out items)</h3>" in html
        and "<td>tiny-llava-lora</td><td>original</td>" in html
    )


def test_adapt_command(tmp_path: Path, capsys: pytest.CaptureFixture):
    from plainsight.cli import main

    toml = _models_toml(tmp_path)
    common = [
        "adapt",
        "--model-config",
        str(toml),
        "--model",
        "tiny-llava",
        "--task",
        "depth",
        "--out",
        str(tmp_path / "a"),
    ]
    assert main([*common, "--method", "prompt"]) == 2
    assert "--tokens" in capsys.readouterr().err
    assert main([*common, "--method", "lora", "--rank", "2", "--model", "tiny-dinov2"]) == 2
    assert "original vlm entry" in capsys.readouterr().err
    assert main([*common, "--method", "lora", "--rank", "2", "--steps", "2", "--train-items", "16", "--name", "t"]) == 0
    out = capsys.readouterr().out
    assert "144 items are held out" in out and '[models.t]\nbase = "tiny-llava"\nadapter_dir = "a"' in out
    meta = read_adaptation(tmp_path / "a").meta
    assert meta["steps"] == 2 and meta["rank"] == 2 and meta["lr"] == 1e-3 and len(meta["train_items"]) == 16


def test_prefix_applies_to_generation_as_to_scoring(tiny_vlm: HFVLM):
    """Greedy decoding restricted to the letters picks the letter-scoring argmax, prefix included."""
    from plainsight.scoring import choose

    requests = _requests(8)
    prefix = PromptPrefix(torch.randn(4, 32, generator=torch.Generator().manual_seed(3)), slot_token_id=0)
    tiny_vlm.prefix = prefix.attach(tiny_vlm.model)
    try:
        scored = [choose(s.logprobs, ("A", "B")).letter for s in tiny_vlm.score_letters(requests)]
        replies = tiny_vlm.generate(requests, restrict_to_letters=True)
        assert prefix.slots is None  # forgotten after the batch
    finally:
        prefix.detach_hook()
        tiny_vlm.prefix = None
    plain = [choose(s.logprobs, ("A", "B")).letter for s in tiny_vlm.score_letters(requests)]
    assert [r.strip().lstrip("▁Ġ") for r in replies] == scored
    assert scored != plain, "this prefix should change some answers (else the test shows nothing)"


def test_llm_lora_learns_to_look(tmp_path: Path):
    """The acceptance run: a VLM whose vision path sees the boxes' colours but whose LLM overlooks them,
    LoRA on the LLM for a fixed budget (seed 0) on 60 depth items, evaluated on the 100 held out.

    It must improve significantly (McNemar p < 0.05) while its blind accuracy stays inside chance's
    95% interval: it learnt to look, not a letter or noun prior.
    """
    from plainsight.models.tiny import build_colour_llava
    from plainsight.records import versus_base
    from plainsight.scoring import wilson_interval

    folder = build_colour_llava(tmp_path / "colour-llava")
    toml = tmp_path / "models.toml"
    toml.write_text(
        f'[models.colour-llava]\nkind = "vlm"\nsource = "{folder}"\nimage_mode = "side_by_side"\nsmoke = true\n'
    )
    plan = AdaptPlan(method="lora", component="llm", rank=8, steps=150, lr=1e-3, batch_size=16, train_items=60, seed=0)
    record = run_adapt(load_models_toml(toml)["colour-llava"], "depth", plan, tmp_path / "lora-llm")
    toml.write_text(
        toml.read_text() + f'\n[models.tuned]\nbase = "colour-llava"\nadapter_dir = "{tmp_path / "lora-llm"}"\n'
    )
    runner = Runner(
        RunOptions(), load_models_toml(toml), training_items={"depth": {"tuned": frozenset(record["train_items"])}}
    )
    held_out = runner.items("depth")
    tuned, tuned_blind = runner.run("depth", "tuned", "vlm"), runner.run("depth", "tuned", "blind")
    original, original_blind = runner.run("depth", "colour-llava", "vlm"), runner.run("depth", "colour-llava", "blind")
    versus = versus_base(tuned, original, original_blind)
    blind_correct = sum(o.correct for o in tuned_blind.outcomes)
    chance_lo, chance_hi = wilson_interval(len(held_out) // 2, len(held_out))
    print(f"\nheld out {len(held_out)}: original {versus['base_accuracy']:.3f} -> tuned {versus['accuracy']:.3f}, "
          f"only tuned {versus['only_tuned_correct']} / only original {versus['only_base_correct']}, McNemar p "
          f"{versus['mcnemar_p']:.2g}; blind {versus['base_blind_accuracy']:.3f} -> {blind_correct / len(held_out):.3f} "
          f"(chance interval [{chance_lo:.3f}, {chance_hi:.3f}]); image attention {versus['base_image_attention']} -> "
          f"{versus['image_attention']}; train loss {record['loss'][0]:.3f} -> {record['loss'][-1]:.3f}")  # fmt: skip
    assert len(held_out) >= 100 and not {it.id for it in held_out} & set(record["train_items"])
    assert versus["accuracy"] > versus["base_accuracy"] and versus["mcnemar_p"] < 0.05
    assert chance_lo <= blind_correct / len(held_out) <= chance_hi


def test_tuned_entry_runs_in_its_originals_xdist_group(tmp_path: Path):
    from plainsight.plugin import xdist_group_for

    entries = load_models_toml(_models_toml(tmp_path, **{"tiny-llava-lora": "x"}))
    assert xdist_group_for(entries["tiny-llava-lora"], entries) == "tiny-llava"
    assert xdist_group_for(entries["tiny-dinov2"], entries) == "tiny-llava"


def test_merged_shards_recompute_the_tuned_comparison(pytester: pytest.Pytester, tmp_path: Path):
    """A sharded run's tuned-vs-original fields and attention means are rebuilt from the merged items, never copied."""
    from plainsight.merge import merge_runs

    out, _ = _adapt(tmp_path, "lora", method="lora", component="llm", rank=4)
    toml = _models_toml(pytester.path, paired=False, **{"tiny-llava-lora": str(out)})
    shutil.copy(REPO / "evals" / "test_depth.py", pytester.path / "test_depth.py")
    thresholds = pytester.path / "thresholds.toml"
    thresholds.write_text("[defaults.vlm]\nabove_chance = true\n")

    def run(report: str, *extra: str) -> Path:
        pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", f"--model-config={toml}", f"--thresholds={thresholds}",
            f"--report-dir={pytester.path / report}", "--models", "tiny-llava-lora", "--limit", "60", *extra,
        )  # fmt: skip
        return pytester.path / report

    whole = json.loads((run("whole") / "results.json").read_text())["results"]
    shards = [run(f"shard{i}", "--shard", f"{i}/2") for i in (1, 2)]
    _, merged, _ = merge_runs(shards, thresholds)
    expected = {(r["model"], r["role"]): r for r in whole}
    got = {(r.model, r.role): r.to_json() for r in merged}  # merge_runs gives Records
    tuned = ("tiny-llava-lora", "vlm")
    lists = ("image_attention", "base_image_attention")  # means of rounded per-item values: equal to 1e-6
    assert {k: v for k, v in got[tuned]["vs_base"].items() if k not in lists} == {
        k: v for k, v in expected[tuned]["vs_base"].items() if k not in lists
    }
    shard_one = {(r["model"], r["role"]): r for r in json.loads((shards[0] / "results.json").read_text())["results"]}
    assert shard_one[tuned]["vs_base"]["paired_n"] < got[tuned]["vs_base"]["paired_n"]  # not one shard's numbers
    for key in lists:
        assert got[tuned]["vs_base"][key] == pytest.approx(expected[tuned]["vs_base"][key], abs=2e-6)
    assert got[tuned]["image_attention"] == pytest.approx(expected[tuned]["image_attention"], abs=2e-6)
    assert got[("tiny-llava", "vlm")]["image_attention"] == pytest.approx(
        expected[("tiny-llava", "vlm")]["image_attention"], abs=2e-6
    )


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"schema": "other/1"}', "field 'schema'"),
    ('{"schema": "plainsight.adapt/1", "method": "lora"}', "missing field 'component'"),
])  # fmt: skip
def test_malformed_adapter_record_names_file_and_field(tmp_path: Path, text: str, message: str):
    (tmp_path / "plainsight_adapt.json").write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        read_adaptation(tmp_path)
    assert "plainsight_adapt.json" in str(err.value)
