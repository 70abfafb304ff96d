"""Tiny random-weight models written as real checkpoint folders (for the default matrix and tests).

They load through exactly the code path real checkpoints use
(``AutoProcessor`` / ``AutoModelForImageTextToText`` / ``AutoModel`` ``from_pretrained``)
and are deterministic: the same seed writes the same weights and tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}{{ '<image>\n' }}{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] + ' ' }}{% endif %}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
CORPUS = [
    "USER: Which point corresponds to the reference? A B C D ASSISTANT: A",
    "Select from the following options. (A) Point A (B) Point B (C) Point C (D) Point D",
    "Which object is closer to the camera taking this photo, the red box or the blue box? left right",
]


def build_bpe_tokenizer(special_tokens: list[str], vocab_size: int = 400, **extra: Any):
    """A byte-level BPE tokenizer trained offline on a fixed corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **extra)


def _llava_processor(image_size: int, patch: int) -> tuple[Any, Any]:
    """The tiny LLaVAs' tokenizer and processor: images resized to image_size² (no crop), our chat template."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    tok = build_bpe_tokenizer(
        ["<pad>", "<s>", "</s>", "<image>"], pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    image_processor = CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size}, do_center_crop=False,
        crop_size={"height": image_size, "width": image_size},
    )  # fmt: skip
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tok, patch_size=patch, vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1,
    )  # fmt: skip
    return tok, processor


def build_tiny_llava(out_dir: Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """A LLaVA (CLIP vision + Llama text) of ~70k parameters that resizes images to image_size² (no crop)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    out_dir = Path(out_dir)
    patch = 8
    tok, processor = _llava_processor(image_size, patch)
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=image_size, patch_size=patch, projection_dim=32),
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy="default", projector_hidden_act="gelu",
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def build_colour_llava(out_dir: Path, *, seed: int = 0, image_size: int = 96, patch: int = 8,
                       text_hidden: int = 128) -> Path:  # fmt: skip
    """A tiny LLaVA whose vision path is set by hand to see two colours; the language model is random.

    Each image token carries how many pixels of its patch are pure red and how many pure blue —
    the colours of the depth task's boxes, whose outline lengths say which box is bigger (the
    bigger box is the closer one on 86% of the embedded depth items; summing the two channels over
    the image orders 108/160 items at 96 px, 129/160 at 160 px, where resizing blurs less). It
    plays "an encoder that sees what the task needs" for tuning tests: the random LLM overlooks the
    two channels, a tuned one can learn to read them; with white images (the blind control) they
    are zero. A random tiny VLM has nothing of the kind to look at.

    How: the patch embedding copies each pixel value and its negative (so LayerNorm's channel mean
    is untouched), a constant channel of 1e5 makes LayerNorm a fixed affine map that its weights
    undo, and the projector's first layer holds one thresholded detector per pixel and colour
    whose sums its second layer writes into output channels 0 (red) and 1 (blue).
    """
    import math

    from transformers import LlavaConfig, LlavaForConditionalGeneration

    out_dir = Path(out_dir)
    tok, processor = _llava_processor(image_size, patch)
    pixels = 3 * patch * patch
    width = 2 * pixels + 2  # +x and -x per pixel value, a constant channel, a spare one
    assert 2 * patch * patch <= text_hidden, "one projector unit per pixel and colour"
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=width, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=image_size, patch_size=patch, projection_dim=32),
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=text_hidden, intermediate_size=2 * text_hidden,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,  # the embeddings, after pre-LN
        vision_feature_select_strategy="default", projector_hidden_act="gelu",
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    tower, projector = model.model.vision_tower, model.model.multi_modal_projector
    constant = 1e5
    with torch.no_grad():
        conv = torch.zeros(width, 3, patch, patch)
        for c in range(3):
            for dy in range(patch):
                for dx in range(patch):
                    channel = c * patch * patch + dy * patch + dx
                    conv[2 + channel, c, dy, dx] = 1.0
                    conv[2 + pixels + channel, c, dy, dx] = -1.0
        tower.embeddings.patch_embedding.weight.copy_(conv)
        tower.embeddings.class_embedding.zero_()
        tower.embeddings.position_embedding.weight.zero_()
        tower.embeddings.position_embedding.weight[:, 0] = constant
        mean = constant / width
        std = constant * math.sqrt(width - 1) / width
        tower.pre_layrnorm.weight.fill_(std)
        tower.pre_layrnorm.bias.fill_(mean)
        tower.pre_layrnorm.weight[:2] = 0.0
        tower.pre_layrnorm.bias[:2] = 0.0
        # Detectors on CLIP-normalised values: pure red scores R-G-B = 5.2 (white -2.3, orange 3.3),
        # pure blue B-R-G = 5.7 (white -1.9, purple 3.8).
        gain, thresholds = 4.0, {"red": 4.5, "blue": 4.8}
        signs = {"red": (1.0, -1.0, -1.0), "blue": (-1.0, -1.0, 1.0)}
        first = torch.zeros(text_hidden, width)
        bias = torch.zeros(text_hidden)
        for k, colour in enumerate(("red", "blue")):
            for p in range(patch * patch):
                unit = k * patch * patch + p
                for c, sign in enumerate(signs[colour]):
                    first[unit, 2 + c * patch * patch + p] = gain * sign
                bias[unit] = -gain * thresholds[colour]
        projector.linear_1.weight.copy_(first)
        projector.linear_1.bias.copy_(bias)
        second = torch.zeros(text_hidden, text_hidden)
        second[0, : patch * patch] = 0.05
        second[1, patch * patch : 2 * patch * patch] = 0.05
        projector.linear_2.weight.copy_(second)
        projector.linear_2.bias.zero_()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_dinov2(out_dir: Path, *, seed: int = 0, image_size: int = 64, patch_size: int = 8) -> Path:
    """A Dinov2Model of ~30k parameters with a BitImageProcessor (short side to image_size, centre crop)."""
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    out_dir = Path(out_dir)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=image_size, patch_size=patch_size)  # fmt: skip
    torch.manual_seed(seed)
    Dinov2Model(config).eval().save_pretrained(out_dir)
    BitImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        do_center_crop=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(out_dir)  # fmt: skip
    return out_dir


VISION_SHRINK = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TEXT_SHRINK = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=16)  # fmt: skip


def shrink_vlm_config(folder: Path):
    """The real config of an hf-configs folder with dimensions shrunk (vocab, token ids and image geometry kept)."""
    from transformers import AutoConfig

    raw = json.loads((Path(folder) / "config.json").read_text())
    raw.pop("quantization_config", None)
    config = AutoConfig.for_model(**raw)
    text = config.text_config
    for key, value in TEXT_SHRINK.items():
        setattr(text, key, value)
    vision = config.vision_config
    model_type = config.model_type
    if model_type == "qwen2_vl":
        for key, value in dict(embed_dim=32, depth=2, num_heads=4, hidden_size=64).items():
            setattr(vision, key, value)
    elif model_type == "qwen2_5_vl":
        for key, value in dict(hidden_size=32, intermediate_size=64, depth=2, num_heads=4, out_hidden_size=64,
                               fullatt_block_indexes=[1]).items():  # fmt: skip
            setattr(vision, key, value)
    else:
        for key, value in VISION_SHRINK.items():
            setattr(vision, key, value)
    if model_type.startswith("qwen2"):
        rope = dict(getattr(text, "rope_parameters", None) or {})
        rope["mrope_section"] = [2, 3, 3]
        text.rope_parameters = rope
    return config


def shrink_config_from_hf_configs(folder: Path) -> tuple[Any, Any]:
    """The real config of an hf-configs folder shrunk per SOURCES.md, and its real processor.

    VLMs keep vocab, special and image token ids and the image geometry (so the real
    processor's image-token count still fits); CLIP and DINOv2 keep their image geometry.
    """
    from transformers import AutoConfig, AutoProcessor

    folder = Path(folder)
    raw = json.loads((folder / "config.json").read_text())
    if raw.get("model_type") == "dinov2":
        config = AutoConfig.for_model(**raw)
        for key, value in VISION_SHRINK.items():
            setattr(config, key, value)
    elif raw.get("model_type") == "clip":
        config = AutoConfig.for_model(**raw)
        for sub in (config.text_config, config.vision_config):
            for key, value in VISION_SHRINK.items():
                setattr(sub, key, value)
        config.projection_dim = 16
    else:
        config = shrink_vlm_config(folder)
    return config, AutoProcessor.from_pretrained(folder)


# Tiny Prismatic checkpoints: the real backbone ids (so timm's data config, Prismatic's transforms and the
# loader's id tables are the real ones) with the ViT shrunk through timm keyword arguments.
PRISMATIC_TINY_BACKBONES = {
    "dinov2": "dinov2-vit-l", "in1k": "in1k-vit-l", "clip": "clip-vit-l", "siglip": "siglip-vit-so400m",
    "dinosiglip": "dinosiglip-vit-so-224px",
}  # fmt: skip
PRISMATIC_VIT_SHRINK = dict(embed_dim=32, depth=4, num_heads=2)
PRISMATIC_LLM_SHRINK = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=4, max_position_embeddings=4096, rms_norm_eps=1e-5)  # fmt: skip


def _write_vicuna_tokenizer(llava_dir: Path, out_dir: Path) -> None:
    """Vicuna v1.5's tokenizer (the Llama-2 one) from llava-1.5's files, minus the two tokens llava-hf added."""
    data = json.loads((Path(llava_dir) / "tokenizer.json").read_text())
    base = ("<unk>", "<s>", "</s>")
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in base]
    (out_dir / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    source = json.loads((Path(llava_dir) / "tokenizer_config.json").read_text())
    config = {
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False, "legacy": False, "model_max_length": 4096, "padding_side": "right",
        "tokenizer_class": "LlamaTokenizer",
        "added_tokens_decoder": {k: v for k, v in source["added_tokens_decoder"].items() if v["content"] in base},
    }  # fmt: skip
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")


def _write_bpe_llama_tokenizer(out_dir: Path) -> None:
    """A small byte-level BPE standing in for the Llama tokenizer: <unk>/<s>/</s>, BOS prefixed."""
    from tokenizers.processors import TemplateProcessing

    tok = build_bpe_tokenizer(["<unk>", "<s>", "</s>"], bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    bos = tok.convert_tokens_to_ids("<s>")
    tok.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                              special_tokens=[("<s>", bos)])  # fmt: skip
    tok.save_pretrained(out_dir)


def build_tiny_prismatic(out_dir: Path, *, seed: int = 0, backbone: str = "dinov2", image_size: int = 112,
                         llama_tokenizer_dir: Path | None = None, arch_specifier: str | None = None,
                         image_resize_strategy: str = "letterbox", with_vision_weights: bool = True) -> Path:  # fmt: skip
    """A Prismatic run folder (config.json, checkpoints/latest-checkpoint.pt) with random tiny weights.

    The backbone is the real Prismatic id (``dinov2`` → ``dinov2-vit-l``: timm's
    ``vit_large_patch14_reg4_dinov2.lvd142m``) shrunk to 4 blocks of width 32 at ``image_size`` px
    (``vision_config.json``); the LLM is a 2-layer Llama of width 64 (``llm_config.json``) with
    Vicuna's tokenizer when ``llama_tokenizer_dir`` (llava-1.5-7b-hf's files) is given, a small BPE
    otherwise. The checkpoint holds ``projector``, ``llm_backbone`` and (unless
    ``with_vision_weights=False``) ``vision_backbone`` state dicts under Prismatic's key names.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from plainsight.models import prismatic as pz

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vision_id = PRISMATIC_TINY_BACKBONES[backbone]
    timm_ids = pz.VISION_BACKBONES[vision_id][1]
    arch = arch_specifier or ("no-align+fused-gelu-mlp" if len(timm_ids) > 1 else "no-align+gelu-mlp")
    model = {
        "model_id": f"tiny-{backbone}-{image_size}px+tiny", "arch_specifier": arch, "vision_backbone_id": vision_id,
        "llm_backbone_id": "vicuna-v15-7b", "image_resize_strategy": image_resize_strategy, "llm_max_length": 2048,
    }  # fmt: skip
    (out_dir / "config.json").write_text(json.dumps({"model": model, "seed": seed}, indent=1, sort_keys=True) + "\n")
    vision = {"image_size": image_size, "timm_kwargs": {key: PRISMATIC_VIT_SHRINK for key in timm_ids}}
    (out_dir / pz.VISION_CONFIG).write_text(json.dumps(vision, indent=1, sort_keys=True) + "\n")
    if llama_tokenizer_dir is not None:
        _write_vicuna_tokenizer(Path(llama_tokenizer_dir), out_dir)
    else:
        _write_bpe_llama_tokenizer(out_dir)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    base = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       tie_word_embeddings=False, **PRISMATIC_LLM_SHRINK)  # fmt: skip
    (out_dir / pz.LLM_CONFIG).write_text(json.dumps(base.to_dict(), indent=1, sort_keys=True) + "\n")

    cfg = pz.read_config(out_dir)
    llm_config, _ = pz.llm_config_and_tokenizer(cfg)
    torch.manual_seed(seed)
    vision_backbone = pz.VisionBackbone({key: pz.create_featurizer(key, cfg) for key in timm_ids})
    with torch.no_grad():  # DINOv2's LayerScale starts at 1e-5: every block would pass its input through unchanged
        for name, param in vision_backbone.named_parameters():
            if name.endswith(("ls1.gamma", "ls2.gamma")):
                param.fill_(1.0)
    llm = LlamaForCausalLM(llm_config)
    width = sum(int(m.embed_dim) for m in vision_backbone.featurizers())
    projector = pz.Projector(arch, width, int(llm_config.hidden_size))
    state = {"projector": projector.state_dict(), "llm_backbone": pz.LLMBackbone(llm).state_dict()}
    if with_vision_weights:
        state["vision_backbone"] = vision_backbone.state_dict()
    (out_dir / pz.CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {k: {n: t.detach().clone().contiguous() for n, t in sd.items()} for k, sd in state.items()}},
               out_dir / pz.CHECKPOINT)  # fmt: skip
    return out_dir
