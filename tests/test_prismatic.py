"""Prismatic VLMs (the paper's own models): the run-folder layout, scoring, own tower, geometry, end to end.

Tiny random checkpoints are built in tmp folders in Prismatic's exact layout
(:func:`plainsight.models.tiny.build_tiny_prismatic`); the Vicuna tokenizer comes from
../shared/hf-configs (llava-1.5-7b-hf's Llama-2 tokenizer) where the test needs it, a small
BPE otherwise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import hf_config_dir
from plainsight import geometry
from plainsight.errors import ConfigError, ModelUnavailable
from plainsight.models import prismatic as pz
from plainsight.models.loading import load_vlm
from plainsight.models.own_tower import OwnTowerEncoder
from plainsight.models.prismatic import PrismaticOwnTower, PrismaticVLM
from plainsight.models.registry import load_models_toml
from plainsight.models.tiny import build_tiny_prismatic
from plainsight.models.vlms import VLMRequest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
LETTERS = ("A", "B", "C", "D")
LLAVA = "llava-hf__llava-1.5-7b-hf"


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_prismatic(tmp_path_factory.mktemp("prismatic") / "tiny-dinov2+tiny")


@pytest.fixture(scope="module")
def vlm(folder: Path) -> PrismaticVLM:
    return PrismaticVLM.from_folder("tiny-prismatic", folder, batch_size=4)


@pytest.fixture(scope="module")
def vicuna(tmp_path_factory: pytest.TempPathFactory) -> PrismaticVLM:
    tokenizer = hf_config_dir(LLAVA)  # skips naming ../shared/hf-configs when absent
    out = build_tiny_prismatic(tmp_path_factory.mktemp("prismatic") / "tiny-vicuna", llama_tokenizer_dir=tokenizer)
    return PrismaticVLM.from_folder("tiny-vicuna", out, batch_size=4)


def copy_folder(folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / folder.name
    shutil.copytree(folder, out)
    return out


def checkpoint(folder: Path) -> dict:
    return torch.load(folder / pz.CHECKPOINT, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------ the layout


def test_state_dicts_map_onto_the_modules_exactly(folder: Path, vlm: PrismaticVLM):
    state = checkpoint(folder)["model"]
    assert set(state) == {"projector", "llm_backbone", "vision_backbone"}
    assert set(state["projector"]) == {
        "projector.0.weight",
        "projector.0.bias",
        "projector.2.weight",
        "projector.2.bias",
    }
    assert all(k.startswith("featurizer.") for k in state["vision_backbone"])
    assert "featurizer.reg_token" in state["vision_backbone"]  # DINOv2 with registers
    assert all(k.startswith("llm.model.") for k in state["llm_backbone"] if k != "llm.lm_head.weight")
    assert "llm.lm_head.weight" in state["llm_backbone"]
    modules = {"projector": vlm.projector, "llm_backbone": pz.LLMBackbone(vlm.llm), "vision_backbone": vlm.vision}
    for component, module in modules.items():
        own = module.state_dict()
        assert set(own) == set(state[component]), component
        for key, value in state[component].items():
            assert torch.equal(own[key], value), (component, key)
    # Prismatic pads the vocabulary (tokenizer + <PAD>) to a multiple of 64 rows.
    rows = state["llm_backbone"]["llm.model.embed_tokens.weight"].shape[0]
    assert rows % 64 == 0 and rows >= len(vlm.tokenizer) and vlm.tokenizer.pad_token == "<PAD>"


@pytest.mark.parametrize(
    "component, change, message",
    [
        ("projector", "drop", "missing keys ['projector.2.bias']"),
        ("llm_backbone", "extra", "unexpected keys ['llm.model.extra']"),
        ("vision_backbone", "drop", "missing keys ['featurizer.pos_embed']"),
        ("projector", "shape", "shape mismatches ['projector.0.weight"),
    ],
)
def test_a_key_that_does_not_map_is_an_error_naming_the_file(folder, tmp_path, component, change, message):
    out = copy_folder(folder, tmp_path)
    ckpt = checkpoint(out)
    state = ckpt["model"][component]
    if change == "drop":
        state.pop("projector.2.bias" if component == "projector" else "featurizer.pos_embed")
    elif change == "extra":
        state["llm.model.extra"] = torch.zeros(1)
    else:
        state["projector.0.weight"] = torch.zeros(3, 3)
    torch.save(ckpt, out / pz.CHECKPOINT)
    with pytest.raises(ConfigError) as err:
        PrismaticVLM.from_folder("x", out)
    assert str(out / pz.CHECKPOINT) in str(err.value) and f"checkpoint['model'][{component!r}]" in str(err.value)
    assert message in str(err.value)


class Payload:
    """A custom object: an unrestricted torch.load would run its __setstate__."""

    ran = False

    def __setstate__(self, state):
        Payload.ran = True


def test_a_checkpoint_with_a_pickled_object_is_refused(folder, tmp_path):
    out = copy_folder(folder, tmp_path)
    ckpt = checkpoint(out)
    ckpt["trainer"] = Payload()
    torch.save(ckpt, out / pz.CHECKPOINT)
    with pytest.raises(ConfigError, match=r"weights_only=True") as err:
        PrismaticVLM.from_folder("x", out)
    assert str(out / pz.CHECKPOINT) in str(err.value)
    assert not Payload.ran


@pytest.mark.parametrize(
    "breakage, error, message",
    [
        ("no_folder", ModelUnavailable, "Prismatic run folder not found"),
        ("no_checkpoint", ModelUnavailable, "checkpoints/latest-checkpoint.pt: checkpoint not found"),
        ("no_config", ModelUnavailable, "config.json: missing"),
        ("no_field", ConfigError, "config.json: field 'model.arch_specifier' is missing"),
        ("bad_backbone", ConfigError, "field 'model.vision_backbone_id' is 'dinov3-vit-l'"),
        ("no_projector", ConfigError, "checkpoint['model'] has no 'projector' state dict"),
    ],
)
def test_missing_parts_name_the_file_and_field(folder, tmp_path, breakage, error, message):
    out = copy_folder(folder, tmp_path)
    config = json.loads((out / "config.json").read_text())
    if breakage == "no_folder":
        out = tmp_path / "nowhere"
    elif breakage == "no_checkpoint":
        (out / pz.CHECKPOINT).unlink()
    elif breakage == "no_config":
        (out / "config.json").unlink()
    elif breakage in ("no_field", "bad_backbone"):
        if breakage == "no_field":
            del config["model"]["arch_specifier"]
        else:
            config["model"]["vision_backbone_id"] = "dinov3-vit-l"
        (out / "config.json").write_text(json.dumps(config))
    else:
        ckpt = checkpoint(out)
        del ckpt["model"]["projector"]
        torch.save(ckpt, out / pz.CHECKPOINT)
    with pytest.raises(error) as err:
        PrismaticVLM.from_folder("x", out)
    assert message in str(err.value)


def test_models_toml_source_resolves_against_the_toml_and_dispatches(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "runs" / "tiny")
    (tmp_path / "models.toml").write_text(
        '[models.pz]\nkind = "vlm"\nsource = "prismatic:runs/tiny"\nimage_mode = "side_by_side"\n'
        'pairs_with = "own_tower"\n'
        '[models.gone]\nkind = "vlm"\nsource = "prismatic:runs/gone"\n'
    )
    entries = load_models_toml(tmp_path / "models.toml")
    assert entries["pz"].resolved_source() == f"prismatic:{tmp_path / 'runs' / 'tiny'}"
    assert not entries["pz"].is_local_path
    loaded = load_vlm(entries["pz"])
    assert isinstance(loaded, PrismaticVLM) and loaded.name == "pz"
    assert isinstance(OwnTowerEncoder(loaded, "pz/own_tower"), PrismaticOwnTower)
    with pytest.raises(ModelUnavailable, match=r"runs/gone: Prismatic run folder not found \(\[models.gone\] source\)"):
        load_vlm(entries["gone"])
    (tmp_path / "bad.toml").write_text('[models.e]\nkind = "encoder"\nsource = "prismatic:runs/tiny"\n')
    with pytest.raises(ConfigError, match=r"\[models.e\]: field 'source'"):
        load_models_toml(tmp_path / "bad.toml")


def test_vision_weights_come_from_the_local_timm_cache_when_the_checkpoint_has_none(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    out = build_tiny_prismatic(tmp_path / "frozen", with_vision_weights=False)
    assert "vision_backbone" not in checkpoint(out)["model"]
    empty = tmp_path / "hf-cache"
    empty.mkdir()
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(empty))
    with pytest.raises(ModelUnavailable, match=r"huggingface-cli download timm/vit_large_patch14_reg4_dinov2.lvd142m"):
        PrismaticVLM.from_folder("x", out)
    # The pretrained file timm would read (here: a random tiny ViT of the same shape) is what gets loaded.
    cfg = pz.read_config(out)
    torch.manual_seed(7)
    reference = pz.create_featurizer("featurizer", cfg)
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(weights))
    monkeypatch.setattr(pz, "timm_cache_file", lambda timm_id: weights)
    loaded = PrismaticVLM.from_folder("x", out)
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.featurizers[0].model.state_dict()[key], value)


def test_building_is_deterministic(tmp_path):
    a = build_tiny_prismatic(tmp_path / "a", seed=3)
    b = build_tiny_prismatic(tmp_path / "b", seed=3)
    for name in ("config.json", pz.LLM_CONFIG, pz.VISION_CONFIG, "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = checkpoint(a)["model"], checkpoint(b)["model"]
    assert all(torch.equal(sa[c][k], sb[c][k]) for c in sa for k in sa[c])


# ------------------------------------------------------------------ prompt and letters


def test_prompt_builders_match_prismatics():
    assert pz.build_prompt("vicuna", "<image>\nWhich point? ") == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: Which point? ASSISTANT:"
    )
    assert pz.build_prompt("vicuna", "Q?", answer="B").endswith("USER: Q? ASSISTANT: B</s>")
    assert pz.build_prompt("pure", "Q?") == "In: Q?\nOut:"


def test_llama_scores_the_token_it_emits_after_assistant(vicuna: PrismaticVLM):
    tokens = vicuna.letter_tokens(LETTERS)
    assert tokens.forced == ()
    assert tokens.ids == {"A": 319, "B": 350, "C": 315, "D": 360}  # "▁A" … "▁D", not "A" alone
    assert vicuna.tokenizer.convert_ids_to_tokens(319) == "▁A"
    ids = vicuna.tokenizer(vicuna.build_prompt("Which point?"))["input_ids"]
    assert ids[0] == 1 and vicuna.tokenizer.convert_ids_to_tokens(ids[-2:]) == ["ANT", ":"]
    assert vicuna.tokenizer.pad_token_id == 32000 and vicuna.llm.config.vocab_size == 32064  # as Prismatic resizes
    scores = vicuna.score_letters([VLMRequest([noise(90, 60)], "Which point? (A) a (B) b (C) c (D) d", LETTERS)])
    assert scores[0].token_ids == tokens.ids and all(np.isfinite(v) for v in scores[0].logprobs.values())


def prismatic_reference_scores(vlm: PrismaticVLM, image: Image.Image, prompt: str, letters: tuple[str, ...]) -> list:
    """Prismatic's own forward, written out: timm's transform after the letterbox pad, BOS, patches, text."""
    import timm.data
    import torchvision.transforms.functional as TVF

    f = vlm.featurizers[0]
    data = timm.data.resolve_model_data_config(f.model)
    data["input_size"] = (3, vlm.config.image_size, vlm.config.image_size)
    transform = timm.data.create_transform(**data, is_training=False)
    w, h = image.size
    side = max(w, h)
    pad = (int((side - w) / 2), int((side - h) / 2)) * 2
    pixels = transform(TVF.pad(image, pad, fill=tuple(int(m * 255) for m in data["mean"])))[None]
    with torch.inference_mode():
        patches = f.model.get_intermediate_layers(pixels, n={len(f.model.blocks) - 2})[0]
        projected = vlm.projector(patches)
        ids = vlm.tokenizer(vlm.build_prompt(prompt), return_tensors="pt").input_ids
        embeds = vlm.llm.get_input_embeddings()(ids)
        fused = torch.cat([embeds[:, :1], projected, embeds[:, 1:]], dim=1)
        logits = vlm.llm(inputs_embeds=fused).logits[0, -1]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return [float(logprobs[vlm.letter_tokens(letters).ids[x]]) for x in letters]


def test_scores_equal_prismatics_own_forward(vlm: PrismaticVLM):
    image = noise(120, 80, seed=3)  # an even difference: Prismatic's letterbox is square too
    prompt = "Which point is closer? (A) a (B) b (C) c (D) d"
    ours = vlm.score_letters([VLMRequest([image], prompt, LETTERS)])[0].logprobs
    assert np.allclose([ours[x] for x in LETTERS], prismatic_reference_scores(vlm, image, prompt, LETTERS), atol=1e-5)


def test_one_forward_per_item_and_batched_equals_one_at_a_time(vlm: PrismaticVLM):
    prompts = ["Which?", "Which point corresponds to the reference point? (A) (B) (C) (D)", "Q", "Select one.\n(A) x"]
    requests = [VLMRequest([noise(60 + 13 * k, 40 + 7 * k, seed=k)], prompts[k % 4], LETTERS) for k in range(6)]
    calls: list[int] = []
    handle = vlm.llm.register_forward_hook(lambda mod, args, kwargs, out: calls.append(kwargs["inputs_embeds"].shape[0]),
                                           with_kwargs=True)  # fmt: skip
    try:
        before = vlm.forward_count
        batched = vlm.score_letters(requests)
        assert calls == [4, 2] and vlm.forward_count - before == len(requests)  # one row of one forward per item
        single = [vlm.score_letters([r])[0] for r in requests]
    finally:
        handle.remove()
    delta = max(abs(b.logprobs[x] - s.logprobs[x]) for b, s in zip(batched, single) for x in LETTERS)
    print(f"max |batched - single| = {delta:.2e}")
    assert delta < 1e-4


def test_blind_white_images_are_scored(vlm: PrismaticVLM):
    prompt = "Which box is closer? (A) red (B) blue"
    white = vlm.score_letters([VLMRequest([Image.new("RGB", (160, 80), "white")], prompt, ("A", "B"))])[0]
    seen = vlm.score_letters([VLMRequest([noise(160, 80)], prompt, ("A", "B"))])[0]
    assert all(np.isfinite(v) for v in white.logprobs.values())
    assert white.logprobs != seen.logprobs


def test_two_separate_images_are_a_config_error(vlm: PrismaticVLM):
    with pytest.raises(ConfigError, match=r'one image per prompt.*image_mode = "side_by_side"'):
        vlm.score_letters([VLMRequest([noise(40, 40), noise(40, 40)], "Which?", LETTERS)])


def test_generation_restricted_to_letters_is_the_scoring_argmax(vlm: PrismaticVLM):
    requests = [VLMRequest([noise(70, 50, seed=k)], "Which point? (A) (B) (C) (D)", LETTERS) for k in range(3)]
    scores = vlm.score_letters(requests)
    replies = vlm.generate(requests, restrict_to_letters=True)
    ids = vlm.letter_tokens(LETTERS).ids
    for s, reply in zip(scores, replies):
        best = max(s.logprobs, key=s.logprobs.get)
        assert reply == vlm.tokenizer.decode([ids[best]])
    free = vlm.generate(requests[:1], max_new_tokens=3)
    assert len(free) == 1 and isinstance(free[0], str)


# ------------------------------------------------------------------ geometry


def test_pixels_equal_prismatics_transform_and_points_land_where_they_are_drawn(vlm: PrismaticVLM):
    spec = vlm.preprocess_spec
    assert spec.letterbox and spec.fill == (123, 116, 103)  # DINOv2's ImageNet mean × 255, truncated
    image = Image.new("RGB", (150, 90), (128, 128, 128))
    point = (112, 30)
    image.paste((255, 0, 0), (point[0] - 4, point[1] - 4, point[0] + 5, point[1] + 5))  # a 9-px red square
    pixels = vlm.pixel_values([image])[0][0]
    f = vlm.featurizers[0]
    rgb = (pixels * f.std[:, None, None] + f.mean[:, None, None]) * 255
    x, y = geometry.plan(spec, image.size).map(point)
    r, g, b = (float(c) for c in rgb[:, round(y), round(x)])
    assert r > 200 and g < 60 and b < 60, (x, y, r, g, b)
    top = rgb[:, 2, 56]  # the letterbox band above the image: the mean colour
    assert torch.allclose(top, torch.tensor([123.0, 116.0, 103.0]), atol=1.5)
    transform = geometry.plan(spec, image.size)
    assert transform.out_size == (112, 112) and transform.contains(point)


def test_the_runner_maps_points_through_the_vlms_own_letterbox(vlm: PrismaticVLM):
    from plainsight.views import vlm_preprocess_spec

    assert vlm_preprocess_spec(vlm) is vlm.preprocess_spec  # not a transformers processor's
    assert pz.preprocess_spec_of(vlm.config.folder) == vlm.preprocess_spec  # from config.json alone


@pytest.mark.parametrize("backbone", ["in1k", "siglip", "clip"])
def test_timm_specs_follow_prismatic_per_backbone(tmp_path, backbone):
    out = build_tiny_prismatic(tmp_path / backbone, backbone=backbone, image_size=112)
    loaded = PrismaticVLM.from_folder(backbone, out)
    spec = loaded.preprocess_spec
    # SigLIP and IN-1k: Resize(default size) instead of timm's larger resize (crop_pct 0.9) — nothing cropped.
    assert (spec.resize, spec.size, spec.crop, spec.letterbox) == ("shortest_edge", 112, (112, 112), True)
    model = loaded.featurizers[0].model
    if backbone == "clip":
        assert type(model.blocks[0].mlp.act).__name__ == "QuickGELU"  # CLIPViTBackbone's override
    if backbone == "siglip":
        assert model.num_prefix_tokens == 0 and spec.fill == (127, 127, 127)
    assert_own_tower_is_the_projector_input(loaded, noise(100, 64, seed=1))


@pytest.mark.parametrize("strategy", ["resize-naive", "resize-crop"])
def test_the_other_resize_strategies_follow_timms_transform(tmp_path, strategy):
    import timm.data
    import torchvision.transforms as T

    folder = tmp_path / strategy
    folder.mkdir()
    model = {"model_id": "x", "vision_backbone_id": "clip-vit-b", "llm_backbone_id": "vicuna-v15-7b",
             "arch_specifier": "gelu-mlp", "image_resize_strategy": strategy}  # fmt: skip
    (folder / "config.json").write_text(json.dumps({"model": model}))
    spec = pz.preprocess_spec_of(folder)
    pretrained = timm.models.get_pretrained_cfg("vit_base_patch16_clip_224.openai").to_dict()
    data = {**timm.data.resolve_data_config({}, pretrained_cfg=pretrained), "input_size": (3, 224, 224)}
    transform = timm.data.create_transform(**data, is_training=False)  # CLIP-B/16: Resize(248), CenterCrop(224)
    if strategy == "resize-naive":  # Prismatic swaps the first Resize for a square one
        square = T.Resize((224, 224), interpolation=transform.transforms[0].interpolation)
        transform = T.Compose([square, *transform.transforms[1:]])
    assert not spec.letterbox
    image = noise(300, 180, seed=4)
    geometric = T.Compose([t for t in transform.transforms if isinstance(t, (T.Resize, T.CenterCrop))])
    assert np.array_equal(np.asarray(geometry.apply(spec, image)), np.asarray(geometric(image)))


# ------------------------------------------------------------------ own tower and probing


def projector_input(vlm: PrismaticVLM, image: Image.Image) -> torch.Tensor:
    captured = []
    handle = vlm.projector.register_forward_hook(lambda mod, args, out: captured.append(args[0]))
    try:
        vlm.score_letters([VLMRequest([image], "Which point?", LETTERS)])
    finally:
        handle.remove()
    return captured[0][0]


def assert_own_tower_is_the_projector_input(vlm: PrismaticVLM, image: Image.Image) -> PrismaticOwnTower:
    tower = OwnTowerEncoder(vlm, f"{vlm.name}/own_tower")
    feats = tower.encode([image])[0]
    expected = projector_input(vlm, image)
    c, gh, gw = feats.patches.shape
    assert (gh * gw, c) == tuple(expected.shape)
    assert torch.allclose(feats.patches.permute(1, 2, 0).reshape(gh * gw, c), expected.float(), atol=1e-6)
    assert feats.transform == geometry.plan(vlm.preprocess_spec, image.size)
    return tower


def test_own_tower_features_are_the_projector_input(vlm: PrismaticVLM):
    image = noise(130, 70, seed=5)
    tower = assert_own_tower_is_the_projector_input(vlm, image)
    # Independently: the second-to-last block's output, registers and CLS dropped, no final norm.
    model = vlm.featurizers[0].model
    with torch.inference_mode():
        x = model.norm_pre(model._pos_embed(model.patch_embed(vlm.pixel_values([image])[0])))
        for block in model.blocks[:-1]:
            x = block(x)
    assert model.num_prefix_tokens == 5
    assert torch.allclose(tower.encode([image])[0].patches.permute(1, 2, 0).reshape(64, -1), x[0, 5:], atol=1e-6)
    layers = tower.encode_layers([image])[0]
    assert len(layers[0]) == 4 and layers[1] == geometry.plan(vlm.preprocess_spec, image.size)


@pytest.mark.parametrize("change", ["last_block", "keep_registers"])
def test_a_wrong_layer_or_keeping_the_registers_does_not_match(vlm: PrismaticVLM, change: str):
    image = noise(130, 70, seed=5)
    expected = projector_input(vlm, image)
    tower = vlm.own_tower()
    pixels = vlm.pixel_values([image])
    with torch.inference_mode():
        if change == "last_block":
            tower.blocks = [len(vlm.featurizers[0].model.blocks) - 1]
            got = tower.projector_input(pixels)[0]
        else:  # drop CLS only (LLaVA's "default" strategy), keeping DINOv2's 4 register tokens: 64 tokens, shifted
            model = vlm.featurizers[0].model
            spatial, prefix = model.get_intermediate_layers(pixels[0], n=tower.blocks, return_prefix_tokens=True)[0]
            got = torch.cat([prefix, spatial], dim=1)[0, 1:65]
    assert got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-3)


def test_fused_backbone_concatenates_both_featurizers(tmp_path):
    out = build_tiny_prismatic(tmp_path / "dinosiglip", backbone="dinosiglip")
    state = checkpoint(out)["model"]
    assert {k.split(".")[0] for k in state["vision_backbone"]} == {"dino_featurizer", "siglip_featurizer"}
    assert {k for k in state["projector"] if k.endswith(".weight")} == {"projector.0.weight", "projector.2.weight",
                                                                       "projector.4.weight"}  # fmt: skip
    loaded = PrismaticVLM.from_folder("fused", out)
    assert [f.spec.fill for f in loaded.featurizers] == [(123, 116, 103), (127, 127, 127)]
    tower = assert_own_tower_is_the_projector_input(loaded, noise(90, 120, seed=2))
    assert tower.encode([noise(50, 50)])[0].patches.shape[0] == 64  # 32 + 32 channels


def test_layer_features_cut_each_image_out_of_the_side_by_side_states(vlm: PrismaticVLM):
    from plainsight import render

    images = [noise(100, 60, seed=1), noise(80, 90, seed=2)]
    states = vlm.layer_features(VLMRequest(images, "Which point?", LETTERS))
    assert len(states) == vlm.llm.config.num_hidden_layers + 1
    canvas, offsets = render.compose_side_by_side(images)
    with torch.inference_mode():
        projected = vlm.projector(vlm.projector_input(vlm.pixel_values([canvas])))[0]  # (64, D): the pre-LLM point
    grid = projected.reshape(8, 8, -1).permute(2, 0, 1)
    composite = geometry.plan(vlm.preprocess_spec, canvas.size)
    for im, (dx, dy), feats in zip(images, offsets, states[0]):
        # The image's cells are a window of the composite grid: a point of the image sits at the same place
        # in that window (its own transform) as in the whole grid (the composite's), an integer number of
        # cells apart — the window's first cell.
        rows, cols = feats.patches.shape[1:]
        shifts = set()
        for p in [(5.0, 7.0), (im.width / 2, im.height / 2), (im.width - 3.0, im.height - 2.0)]:
            gx, gy = feats.transform.to_grid(p)
            cx, cy = composite.to_grid((p[0] + dx, p[1] + dy))
            sx, sy = (cx + 1) / 2 * 8 - (gx + 1) / 2 * cols, (cy + 1) / 2 * 8 - (gy + 1) / 2 * rows
            assert abs(sx - round(sx)) < 1e-6 and abs(sy - round(sy)) < 1e-6
            shifts.add((round(sy), round(sx)))
        ((y0, x0),) = shifts
        assert torch.allclose(grid[:, y0 : y0 + rows, x0 : x0 + cols].float(), feats.patches, atol=1e-5)
    assert not torch.allclose(states[0][0].patches, states[-1][0].patches)


# ------------------------------------------------------------------ end to end through pytest


def e2e_toml(folder: Path) -> str:
    return (
        "[models.tiny-prismatic]\n"
        'kind = "vlm"\n'
        f'source = "prismatic:{folder}"\n'
        'image_mode = "side_by_side"\n'
        'pairs_with = "own_tower"\n'
        "smoke = true\n"
    )


def test_end_to_end_all_six_tasks_and_the_layer_probe(pytester: pytest.Pytester, embedded_data: Path, tmp_path: Path):
    from conftest import HF_CONFIGS

    llava = HF_CONFIGS / LLAVA
    tokenizer = llava if (llava / "tokenizer.json").is_file() else None  # Vicuna's when present, BPE otherwise
    folder = build_tiny_prismatic(tmp_path / "tiny-prismatic", llama_tokenizer_dir=tokenizer)
    for module in sorted((REPO / "evals").glob("test_*.py")):
        shutil.copy(module, pytester.path / module.name)
    (pytester.path / "models.toml").write_text(e2e_toml(folder))
    report = pytester.path / "report"
    common = [
        "-p", "no:cacheprovider", "-p", "no:randomly", f"--model-config={pytester.path / 'models.toml'}",
        f"--thresholds={REPO / 'fixtures' / 'thresholds.toml'}", f"--cache-dir={tmp_path / 'cache'}", "--limit=4",
    ]  # fmt: skip
    result = pytester.runpytest_subprocess(*common, f"--report-dir={report}", "-rA")
    outcomes = result.parseoutcomes()
    tail = result.stdout.str()[-3000:]
    assert result.ret == 0 and outcomes.get("passed") == 6, tail
    assert not outcomes.get("failed") and not outcomes.get("skipped") and not outcomes.get("errors"), tail
    records = json.loads((report / "results.json").read_text())["results"]
    tasks = {"depth", "semantic_correspondence", "functional_correspondence", "low_level_matching", "object_3d",
             "art_style"}  # fmt: skip
    keys = {(r["task"], r["model"], r["role"]) for r in records}
    for task in tasks:
        assert (task, "tiny-prismatic", "vlm") in keys and (task, "tiny-prismatic", "blind") in keys
        assert (task, "tiny-prismatic/own_tower", "vision") in keys
    vlm_records = [r for r in records if r["role"] == "vlm"]
    assert all(r["n"] == 4 for r in vlm_records) and all(r["verdict"] == "pass" for r in vlm_records)

    probe_report = pytester.path / "probe-report"
    probe = pytester.runpytest_subprocess(
        *common, f"--report-dir={probe_report}", "-m", "probe", "-k", "correspondence"
    )
    assert probe.ret == 0, probe.stdout.str()[-3000:]
    probes = [r for r in json.loads((probe_report / "results.json").read_text())["results"] if r["role"] == "probe"]
    assert {r["task"] for r in probes} == {"semantic_correspondence", "functional_correspondence", "low_level_matching"}
    for record in probes:
        series = record["layer_series"]
        assert [p["layer"] for p in series] == [0, 1, 2] and series[0]["point"] == "pre-LLM"
        assert all(p["accuracy"] is None or 0 <= p["accuracy"] <= 1 for p in series)


def test_show_draws_what_a_prismatic_model_sees(folder: Path, tmp_path: Path):
    """`plainsight show --model` reads a Prismatic folder's geometry from config.json (letterboxed, 112 px)."""
    import subprocess
    import sys

    toml = tmp_path / "models.toml"
    toml.write_text(f'[models.p]\nkind = "vlm"\nsource = "prismatic:{folder}"\nimage_mode = "side_by_side"\n')
    out = tmp_path / "seen.png"
    exe = Path(sys.executable).parent / "plainsight"
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([str(exe), "show", "--task", "art_style", "--model", "p", "--model-config", str(toml),
                           "--out", str(out), _first_art_style_id()], capture_output=True, text=True, cwd=repo,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as seen:
        assert seen.size == (112, 112)


def _first_art_style_id() -> str:
    from plainsight.tasks import LoadRequest, get_task

    return get_task("art_style").load_items(LoadRequest(None, limit=1))[0].id
