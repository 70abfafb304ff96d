"""Prismatic VLMs (TRI-ML/prismatic-vlms), the paper's own models, read from a Prismatic run folder.

``source = "prismatic:<folder>"`` in models.toml. The folder is the layout prismatic-vlms writes
(``scripts/pretrain.py``) and reads (``prismatic/models/load.py``):

- ``config.json``: its ``"model"`` dict names ``model_id``, ``vision_backbone_id`` (e.g. ``dinov2-vit-l``),
  ``llm_backbone_id`` (e.g. ``vicuna-v15-7b``), ``arch_specifier`` (e.g. ``no-align+gelu-mlp``),
  ``image_resize_strategy`` (``letterbox`` for the paper's models) and ``llm_max_length``;
- ``checkpoints/latest-checkpoint.pt``: ``{"model": {"projector": sd, "llm_backbone": sd}}`` plus
  ``"vision_backbone": sd`` when the backbone was trained (``full-finetune``). Each state dict is the
  component module's own, its prefix split off by the training strategy's ``save_checkpoint``:
  projector keys ``projector.0.*`` / ``projector.2.*`` (``gelu-mlp``: Linear → GELU → Linear),
  ``projector.{0,2,4}.*`` (``fused-gelu-mlp``), ``projector.*`` (``linear``); LLM keys ``llm.model.*``
  and ``llm.lm_head.weight``; vision keys ``featurizer.*`` (one timm ViT) or ``dino_featurizer.*`` +
  ``siglip_featurizer.*`` / ``clip_featurizer.*`` (fused backbones).

It is read with ``torch.load(..., weights_only=True)``: a file holding anything but tensors and
containers is refused. Nothing of the prismatic package is imported; the parts are rebuilt here:

- vision: ``timm.create_model(<timm id>, pretrained=False, num_classes=0, img_size=<default size>)``
  (OpenAI CLIP with ``act_layer="quick_gelu"`` as Prismatic's ``CLIPViTBackbone`` does); its features are
  ``get_intermediate_layers(n={len(blocks) - 2})``: the second-to-last block's output, prefix (CLS and
  register) tokens dropped, no final norm. Fused backbones concatenate their featurizers' features.
  Weights come from the checkpoint's ``vision_backbone`` when present, otherwise (a frozen backbone, as
  in the paper's models) from timm's pretrained file in the local Hugging Face cache — never downloaded;
- LLM: ``LlamaForCausalLM`` from its config, with the ``<PAD>`` token Prismatic adds and the embedding
  rows it pads to a multiple of 64 (Vicuna: 32000 → 32064);
- preprocessing (``image_resize_strategy``): the timm eval transform at the default image size (SigLIP
  and IN-1k resized to that size, not the larger default resize — Prismatic's own fix), after a
  letterbox padded with the normalisation mean × 255 (``letterbox``), or a square resize
  (``resize-naive``), or nothing (``resize-crop``). One deviation: Prismatic's ``LetterboxPad`` pads
  ``int((max − w) / 2)`` on *both* sides, leaving an image whose sides differ by an odd number of pixels
  one pixel short of square (the later resize and centre crop absorb it); here the rest goes right or
  below and the canvas is square, which :mod:`plainsight.geometry` models exactly;
- prompt: Vicuna v1.5 (``"<system> USER: {msg} ASSISTANT:"``, the builder's ``rstrip``) or Llama-2 pure
  (``"In: {msg}\\nOut:"``), tokenised with BOS; the projected patch embeddings go right after BOS.

Where the LLM config and tokenizer come from offline: ``llm_config.json`` and the tokenizer files in
the folder when present, otherwise the LLM's Hub id (``lmsys/vicuna-7b-v1.5``) in the local Hugging
Face cache. ``vision_config.json`` (ours, optional) overrides the image size and timm keyword
arguments, for the shrunk checkpoints tests build (:func:`plainsight.models.tiny.build_tiny_prismatic`).

One image per prompt: ``image_mode = "side_by_side"`` composes an item's images into one.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from plainsight import geometry
from plainsight.errors import ConfigError, ModelUnavailable
from plainsight.models.backends import BACKENDS, PRISMATIC, Backend
from plainsight.models.encoders import Features, probe_blocks, torch_dtype
from plainsight.models.vlms import (
    LetterScorer,
    LetterTokens,
    VLMRequest,
    greedy_settings,
    split_letter_tokens,
)  # fmt: skip

CHECKPOINT = Path("checkpoints") / "latest-checkpoint.pt"
LLM_CONFIG = "llm_config.json"
VISION_CONFIG = "vision_config.json"
REQUIRED_FIELDS = ("model_id", "vision_backbone_id", "llm_backbone_id", "arch_specifier", "image_resize_strategy")

# prismatic/models/materialize.py VISION_BACKBONES + backbones/vision/*.py: id → (default image size,
# {featurizer attribute: timm id}). SigLIP ids carry the tag timm 0.9 resolved them to (".webli");
# timm 1.0 resolves the untagged SigLIP-SO400M/14 224 id to SigLIP 2 weights.
VISION_BACKBONES: dict[str, tuple[int, dict[str, str]]] = {
    "clip-vit-l": (224, {"featurizer": "vit_large_patch14_clip_224.openai"}),
    "siglip-vit-so400m": (224, {"featurizer": "vit_so400m_patch14_siglip_224.webli"}),
    "dinov2-vit-l": (224, {"featurizer": "vit_large_patch14_reg4_dinov2.lvd142m"}),
    "in1k-vit-l": (224, {"featurizer": "vit_large_patch16_224.augreg_in21k_ft_in1k"}),
    "clip-vit-b": (224, {"featurizer": "vit_base_patch16_clip_224.openai"}),
    "clip-vit-l-336px": (336, {"featurizer": "vit_large_patch14_clip_336.openai"}),
    "siglip-vit-b16-224px": (224, {"featurizer": "vit_base_patch16_siglip_224.webli"}),
    "siglip-vit-b16-256px": (256, {"featurizer": "vit_base_patch16_siglip_256.webli"}),
    "siglip-vit-b16-384px": (384, {"featurizer": "vit_base_patch16_siglip_384.webli"}),
    "siglip-vit-so400m-384px": (384, {"featurizer": "vit_so400m_patch14_siglip_384.webli"}),
    "dinoclip-vit-l-336px": (336, {"dino_featurizer": "vit_large_patch14_reg4_dinov2.lvd142m",
                                   "clip_featurizer": "vit_large_patch14_clip_336.openai"}),
    "dinosiglip-vit-so-224px": (224, {"dino_featurizer": "vit_large_patch14_reg4_dinov2.lvd142m",
                                      "siglip_featurizer": "vit_so400m_patch14_siglip_224.webli"}),
    "dinosiglip-vit-so-384px": (384, {"dino_featurizer": "vit_large_patch14_reg4_dinov2.lvd142m",
                                      "siglip_featurizer": "vit_so400m_patch14_siglip_384.webli"}),
}  # fmt: skip

# prismatic/models/backbones/llm/llama2.py LLAMA2_MODELS: id → (Hub id, prompt style).
LLM_BACKBONES: dict[str, tuple[str, str]] = {
    "vicuna-v15-7b": ("lmsys/vicuna-7b-v1.5", "vicuna"),
    "vicuna-v15-13b": ("lmsys/vicuna-13b-v1.5", "vicuna"),
    "llama2-7b-pure": ("meta-llama/Llama-2-7b-hf", "pure"),
    "llama2-13b-pure": ("meta-llama/Llama-2-13b-hf", "pure"),
}
RESIZE_STRATEGIES = ("letterbox", "resize-naive", "resize-crop")
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
PAD_TOKEN = "<PAD>"  # LLaMa2LLMBackbone adds it, then pads the embedding rows to a multiple of 64
PAD_MULTIPLE = 64


def build_prompt(style: str, message: str, answer: str | None = None) -> str:
    """The prompt builder's text for one user turn (without BOS: the tokenizer adds it).

    Without ``answer``: what ``get_prompt()`` returns for inference (right-stripped, so it ends with
    "ASSISTANT:"). With it: the training text of the answered turn (``"... ASSISTANT: B</s>"``).
    """
    message = message.replace("<image>", "").strip()
    if style == "vicuna":
        text = f"{VICUNA_SYSTEM} USER: {message} ASSISTANT: "
    elif style == "pure":
        text = f"In: {message}\nOut: "
    else:
        raise ValueError(f"unknown prompt style {style!r}")
    return text.rstrip() if answer is None else f"{text}{answer if answer else ' '}</s>"


# -------------------------------------------------------------------- modules with Prismatic's key names


class Projector(nn.Module):
    """prismatic/util/nn_utils.py's projectors; the state dict keys are ``projector.*``."""

    def __init__(self, arch_specifier: str, vision_dim: int, llm_dim: int):
        super().__init__()
        if arch_specifier == "linear":
            self.projector: nn.Module = nn.Linear(vision_dim, llm_dim, bias=True)
        elif arch_specifier.endswith("fused-gelu-mlp"):
            hidden = 4 * vision_dim
            self.projector = nn.Sequential(nn.Linear(vision_dim, hidden), nn.GELU(), nn.Linear(hidden, llm_dim),
                                           nn.GELU(), nn.Linear(llm_dim, llm_dim))  # fmt: skip
        elif arch_specifier.endswith("gelu-mlp"):
            self.projector = nn.Sequential(nn.Linear(vision_dim, llm_dim), nn.GELU(), nn.Linear(llm_dim, llm_dim))
        else:
            raise ValueError(f"arch_specifier {arch_specifier!r}")

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.projector(patches)


def supported_arch(arch_specifier: str) -> bool:
    return arch_specifier == "linear" or arch_specifier.endswith("gelu-mlp")


class VisionBackbone(nn.Module):
    """The featurizer(s) as attributes named like Prismatic's (``featurizer`` or ``dino_featurizer`` + ...)."""

    def __init__(self, featurizers: dict[str, nn.Module]):
        super().__init__()
        self.keys = list(featurizers)
        for key, model in featurizers.items():
            self.add_module(key, model)

    def featurizers(self) -> list[nn.Module]:
        return [getattr(self, key) for key in self.keys]


class LLMBackbone(nn.Module):
    """Holds the causal LM as ``llm`` (keys ``llm.model.*``, ``llm.lm_head.weight``)."""

    def __init__(self, llm: nn.Module):
        super().__init__()
        self.llm = llm


# -------------------------------------------------------------------- reading the folder


@dataclass(frozen=True)
class PrismaticConfig:
    """The ``model`` dict of config.json, checked, plus what follows from its ids."""

    folder: Path
    model_id: str
    vision_backbone_id: str
    llm_backbone_id: str
    arch_specifier: str
    image_resize_strategy: str
    llm_max_length: int
    image_size: int
    timm_ids: dict[str, str]  # featurizer attribute → timm id
    timm_kwargs: dict[str, dict[str, Any]]  # featurizer attribute → extra create_model kwargs
    llm_hub_id: str
    prompt_style: str


def read_config(folder: Path, entry_name: str = "") -> PrismaticConfig:
    """config.json's model dict; errors name the file and field."""
    folder = Path(folder)
    where = f" ([models.{entry_name}] source)" if entry_name else ""
    if not folder.is_dir():
        raise ModelUnavailable(f"{folder}: Prismatic run folder not found{where}")
    path = folder / "config.json"
    if not path.is_file():
        raise ModelUnavailable(f"{path}: missing — a Prismatic run folder holds config.json and {CHECKPOINT}{where}")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    model = raw.get("model") if isinstance(raw, dict) else None
    if not isinstance(model, dict):
        raise ConfigError(f"{path}: field 'model' (the run's model config) is missing or not an object")
    for key in REQUIRED_FIELDS:
        if not isinstance(model.get(key), str) or not model[key]:
            raise ConfigError(f"{path}: field 'model.{key}' is missing or not a string")
    vision_id, llm_id, arch = model["vision_backbone_id"], model["llm_backbone_id"], model["arch_specifier"]
    strategy = model["image_resize_strategy"]
    if vision_id not in VISION_BACKBONES:
        raise ConfigError(f"{path}: field 'model.vision_backbone_id' is {vision_id!r}; supported: "
                          f"{sorted(VISION_BACKBONES)}")  # fmt: skip
    if llm_id not in LLM_BACKBONES:
        raise ConfigError(f"{path}: field 'model.llm_backbone_id' is {llm_id!r}; supported (Llama-2 family): "
                          f"{sorted(LLM_BACKBONES)}")  # fmt: skip
    if not supported_arch(arch):
        raise ConfigError(f"{path}: field 'model.arch_specifier' is {arch!r}; supported: linear, [no-align+]gelu-mlp, "
                          "[no-align+]fused-gelu-mlp")  # fmt: skip
    if strategy not in RESIZE_STRATEGIES:
        raise ConfigError(
            f"{path}: field 'model.image_resize_strategy' is {strategy!r}; supported: {RESIZE_STRATEGIES}"
        )
    image_size, timm_ids = VISION_BACKBONES[vision_id]
    timm_kwargs: dict[str, dict[str, Any]] = {key: {} for key in timm_ids}
    vision_path = folder / VISION_CONFIG
    if vision_path.is_file():
        try:
            vision = json.loads(vision_path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{vision_path}: not valid JSON ({exc})") from None
        image_size = int(vision.get("image_size", image_size))
        for key, kwargs in (vision.get("timm_kwargs") or {}).items():
            if key not in timm_ids:
                raise ConfigError(f"{vision_path}: field 'timm_kwargs.{key}' names no featurizer of {vision_id} "
                                  f"({sorted(timm_ids)})")  # fmt: skip
            timm_kwargs[key] = dict(kwargs)
    hub_id, style = LLM_BACKBONES[llm_id]
    return PrismaticConfig(
        folder, model["model_id"], vision_id, llm_id, arch, strategy, int(model.get("llm_max_length", 2048)),
        image_size, dict(timm_ids), timm_kwargs, hub_id, style,
    )  # fmt: skip


def read_checkpoint(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``checkpoint["model"]``: the per-component state dicts, read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise ModelUnavailable(f"{path}: checkpoint not found (a Prismatic run folder holds {CHECKPOINT})")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{path}: refused — it holds more than tensors and plain containers, and it is read with "
            f"torch.load(weights_only=True), which never unpickles objects ({first})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file is the user's to fix
        raise ConfigError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ConfigError(f"{path}: expected {{'model': {{component: state dict}}}}, found {found}")
    model = checkpoint["model"]
    for key in ("projector", "llm_backbone"):
        if key not in model:
            raise ConfigError(f"{path}: checkpoint['model'] has no {key!r} state dict (it has {sorted(model)})")
    for key, state in model.items():
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ConfigError(f"{path}: checkpoint['model'][{key!r}] is not a state dict of tensors")
    return model


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: Path, component: str, *,
                assign: bool = False) -> None:  # fmt: skip
    """Load a state dict whose keys and shapes must match the module exactly; the error names the file."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]  # fmt: skip
    if missing or unexpected or shapes:

        def some(keys: list[str]) -> str:
            return f"{keys[:5]}" + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

        raise ConfigError(
            f"{path}: checkpoint['model'][{component!r}] does not match the {component} that config.json describes: "
            f"missing keys {some(missing)}, unexpected keys {some(unexpected)}, shape mismatches {some(shapes)}"
        )
    module.load_state_dict(state, strict=True, assign=assign)


def _llm_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Older transformers saved the rotary tables (derived, not learnt) as persistent buffers; they are rebuilt.
    return {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}


def _rebuild_meta_buffers(module: nn.Module, config: Any) -> None:
    """Non-persistent buffers of a module built on the meta device: rebuild the rotary tables, refuse others."""
    for name, child in list(module.named_modules()):
        if any(b is not None and b.is_meta for b in child._buffers.values()):
            if not type(child).__name__.endswith("RotaryEmbedding"):
                raise RuntimeError(f"{name} ({type(child).__name__}) has buffers the checkpoint does not hold")
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attr, type(child)(config=config))
    leftover = [n for n, p in module.named_parameters() if p.is_meta]
    if leftover:
        raise RuntimeError(f"parameters not loaded: {leftover[:5]}")


def timm_cache_file(timm_id: str) -> Path:
    """timm's pretrained weights for ``timm_id`` from the local Hugging Face cache (never downloaded)."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(timm_id)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        found = try_to_load_from_cache(hub_id, "model.safetensors")
        if isinstance(found, str):
            return Path(found)
    raise ModelUnavailable(
        f"the vision backbone's weights ({timm_id}) are neither in the checkpoint (no 'vision_backbone' state dict: "
        f"the backbone was frozen) nor in the local Hugging Face cache (the suite never downloads): run "
        f"`huggingface-cli download {hub_id or 'timm/' + timm_id} model.safetensors` where the hub is reachable"
    )


def _timm_kwargs(key: str, timm_id: str, cfg: PrismaticConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": 0, "img_size": cfg.image_size}
    if key == "featurizer" and timm_id.endswith(".openai"):
        kwargs["act_layer"] = "quick_gelu"  # CLIPViTBackbone's override (the fused backbones do not set it)
    kwargs.update(cfg.timm_kwargs.get(key, {}))
    return kwargs


def featurizer_spec(timm_id: str, cfg: PrismaticConfig) -> tuple[geometry.PreprocessSpec, tuple, tuple]:
    """(geometry, mean, std) of one featurizer's image transform under the run's resize strategy."""
    import timm
    import timm.data

    data = timm.data.resolve_data_config({}, pretrained_cfg=timm.models.get_pretrained_cfg(timm_id).to_dict())
    data["input_size"] = (3, cfg.image_size, cfg.image_size)
    if "siglip" in timm_id or "in1k" in timm_id:
        data["crop_pct"] = 1.0  # Prismatic replaces their larger default resize by Resize(default_image_size)
    mean, std = tuple(float(m) for m in data["mean"]), tuple(float(s) for s in data["std"])
    spec = geometry.spec_from_timm(data, source=f"{PRISMATIC}{timm_id}")
    if cfg.image_resize_strategy == "letterbox":
        spec = replace(spec, letterbox=True, fill=tuple(int(m * 255) for m in mean))
    elif cfg.image_resize_strategy == "resize-naive":
        spec = replace(spec, resize="exact", size=(cfg.image_size, cfg.image_size))
    else:
        spec = replace(spec, fill=tuple(int(m * 255) for m in mean))
    return spec, mean, std


def preprocess_spec_of(folder: Path) -> geometry.PreprocessSpec:
    """The geometry a Prismatic folder's model applies, from config.json alone (no weights read)."""
    cfg = read_config(folder)
    return featurizer_spec(next(iter(cfg.timm_ids.values())), cfg)[0]


# -------------------------------------------------------------------- the VLM


@dataclass
class _Featurizer:
    key: str
    timm_id: str
    model: nn.Module
    spec: geometry.PreprocessSpec
    mean: torch.Tensor
    std: torch.Tensor
    patch: int


class PrismaticVLM(LetterScorer):
    """A Prismatic VLM answering multiple-choice items by letter log-probability (one forward per item)."""

    family = "prismatic"

    def __init__(self, name: str, cfg: PrismaticConfig, vision: VisionBackbone, projector: Projector,
                 llm: nn.Module, tokenizer: Any, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                 batch_size: int = 8):  # fmt: skip
        self.name = name
        self.config = cfg
        self.device, self.dtype, self.batch_size = device, dtype, max(1, int(batch_size))
        self.vision = vision.to(device=device, dtype=dtype).eval()
        self.projector = projector.to(device=device, dtype=dtype).eval()
        self.llm = llm.to(device=device, dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.forward_count = 0
        self._letter_cache: dict[tuple[str, ...], LetterTokens] = {}
        self.featurizers: list[_Featurizer] = []
        for key, model in zip(vision.keys, vision.featurizers()):
            timm_id = cfg.timm_ids[key]
            spec, mean, std = featurizer_spec(timm_id, cfg)
            patch = model.patch_embed.patch_size
            patch = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
            self.featurizers.append(
                _Featurizer(key, timm_id, model, spec, torch.tensor(mean), torch.tensor(std), patch)
            )
        first = self.featurizers[0]
        for other in self.featurizers[1:]:
            same = replace(other.spec, fill=first.spec.fill, source=first.spec.source) == first.spec
            if not same or other.patch != first.patch:
                raise ConfigError(f"{name}: the fused featurizers {first.key} and {other.key} see different geometry")
        # What the runner maps points through (markers, own tower): the first featurizer's transform.
        self.preprocess_spec = first.spec
        # get_intermediate_layers(n={len(blocks) - 2}): the second-to-last block, per featurizer
        self.feature_blocks = [len(f.model.blocks) - 2 for f in self.featurizers]

    # -- loading ---------------------------------------------------------------
    @classmethod
    def from_folder(cls, name: str, folder: Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                    batch_size: int = 8) -> "PrismaticVLM":  # fmt: skip
        cfg = read_config(folder, name)
        llm_config, tokenizer = llm_config_and_tokenizer(cfg)  # before the (large) checkpoint is read
        checkpoint_path = cfg.folder / CHECKPOINT
        state = read_checkpoint(checkpoint_path)
        vision = _build_vision(cfg, state.get("vision_backbone"), checkpoint_path)
        llm = _build_llm(llm_config, state["llm_backbone"], checkpoint_path)
        vision_dim = sum(int(m.embed_dim) for m in vision.featurizers())
        projector = Projector(cfg.arch_specifier, vision_dim, int(llm.config.hidden_size))
        load_strict(projector, state["projector"], checkpoint_path, "projector")
        return cls(name, cfg, vision, projector, llm, tokenizer, device=device, dtype=dtype, batch_size=batch_size)

    # -- prompts and letters -----------------------------------------------------
    def build_prompt(self, text: str) -> str:
        return build_prompt(self.config.prompt_style, text)

    def _answer_tokens(self, letter: str) -> list[int]:
        prompt = build_prompt(self.config.prompt_style, "Question?")
        full = build_prompt(self.config.prompt_style, "Question?", answer=letter)
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        full_ids = self.tokenizer(full, add_special_tokens=False)["input_ids"]
        if full_ids[: len(prompt_ids)] != prompt_ids or len(full_ids) == len(prompt_ids):
            raise RuntimeError(f"{self.name}: cannot locate the answer token of {letter!r} after the prompt")
        return full_ids[len(prompt_ids) :]

    def letter_tokens(self, letters: tuple[str, ...]) -> LetterTokens:
        """The token each letter's answer starts with after "ASSISTANT:" ("▁A" for Llama), as HFVLM finds it."""
        if letters not in self._letter_cache:
            answers = {letter: self._answer_tokens(letter) for letter in letters}
            self._letter_cache[letters] = split_letter_tokens(self.name, answers)
        return self._letter_cache[letters]

    # -- images ----------------------------------------------------------------
    def pixel_values(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """Per featurizer, (B, 3, S, S): the geometry of :attr:`preprocess_spec` applied, then ToTensor + Normalize."""
        out = []
        for f in self.featurizers:
            batch = []
            for im in images:
                shown = geometry.apply(f.spec, im)
                x = torch.from_numpy(np.array(shown, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
                batch.append((x - f.mean[:, None, None]) / f.std[:, None, None])
            out.append(torch.stack(batch).to(device=self.device, dtype=self.dtype))
        return out

    def projector_input(self, pixels: list[torch.Tensor], blocks: list[int] | None = None) -> torch.Tensor:
        """(B, patches, C): each featurizer's block output (prefix tokens dropped, no norm), concatenated."""
        blocks = self.feature_blocks if blocks is None else blocks
        feats = [f.model.get_intermediate_layers(x, n=[b])[0] for f, x, b in zip(self.featurizers, pixels, blocks)]
        return torch.cat(feats, dim=2)

    def grid_size(self, pixels: list[torch.Tensor]) -> tuple[int, int]:
        h, w = pixels[0].shape[-2:]
        patch = self.featurizers[0].patch
        return h // patch, w // patch

    def _one_image(self, request: VLMRequest) -> Image.Image:
        if len(request.images) != 1:
            raise ConfigError(
                f"{self.name}: Prismatic takes one image per prompt and this item has {len(request.images)}; set "
                f'image_mode = "side_by_side" in its models.toml entry (the images are composed into one)'
            )
        return request.images[0]

    # -- the forward -------------------------------------------------------------
    def _inputs(self, requests: list[VLMRequest], forced: tuple[int, ...] = ()) -> tuple[dict[str, torch.Tensor], int]:
        """inputs_embeds / attention_mask / position_ids, left-padded: per row [pad…, BOS, patches, prompt, forced].

        Also returns the patch count (the image tokens sit right after each row's BOS).
        """
        images = [self._one_image(r) for r in requests]
        rows = []
        for r in requests:
            ids = list(self.tokenizer(self.build_prompt(r.prompt))["input_ids"]) + list(forced)
            if ids[0] != self.tokenizer.bos_token_id:
                raise RuntimeError(f"{self.name}: the tokenizer does not start the prompt with BOS")
            rows.append(ids)
        patches = self.projector(self.projector_input(self.pixel_values(images)))  # (B, N, D)
        n = patches.shape[1]
        embed = self.llm.get_input_embeddings()
        longest = max(len(ids) for ids in rows) + n
        embeds = torch.zeros(len(rows), longest, patches.shape[2], device=self.device, dtype=patches.dtype)
        mask = torch.zeros(len(rows), longest, dtype=torch.long, device=self.device)
        for i, ids in enumerate(rows):
            text = embed(torch.tensor(ids, device=self.device))
            row = torch.cat([text[:1], patches[i], text[1:]], dim=0)
            embeds[i, longest - len(row) :] = row
            mask[i, longest - len(row) :] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        return {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": position_ids}, n

    def answer_logits(self, requests: list[VLMRequest], *, attention: list | None = None) -> torch.Tensor:
        """(B, vocab) logits at the answer position for a batch sharing its letters — ONE forward.

        ``attention`` is left empty: the attention diagnostic does not support Prismatic models.
        """
        letters = requests[0].letters
        if any(r.letters != letters for r in requests):
            raise ValueError("a batch must share its answer letters")
        inputs, _ = self._inputs(requests, self.letter_tokens(letters).forced)
        self.forward_count += len(requests)
        return self.llm(**inputs, logits_to_keep=1).logits[:, -1, :]

    @torch.inference_mode()
    def generate(
        self, requests: list[VLMRequest], *, max_new_tokens: int = 8, restrict_to_letters: bool = False
    ) -> list[str]:
        """Greedy replies (special tokens kept, so the parser sees what the model emitted)."""
        replies: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            kwargs, forced = greedy_settings(self, chunk[0].letters, max_new_tokens, restrict_to_letters)
            inputs, _ = self._inputs(chunk, forced)
            inputs.pop("position_ids")  # generate derives them from the attention mask
            out = self.llm.generate(**inputs, pad_token_id=self.tokenizer.pad_token_id, **kwargs)
            self.forward_count += len(chunk)
            replies.extend(self.tokenizer.batch_decode(out, skip_special_tokens=False))
        return replies

    # -- the vision tower as an encoder, and layer-wise probing -------------------
    def own_tower(self, name: str | None = None) -> "PrismaticOwnTower":
        return PrismaticOwnTower(self, name)

    @torch.inference_mode()
    def layer_features(self, request: VLMRequest) -> list[list[Features]]:
        """[layer][image] → the image-token states of one forward, as each source image's feature grid.

        The item's images are composed side by side (one image per prompt), the composite goes through
        the VLM once with hidden states, and each layer's patch grid is cut to the cells each source image
        covers, with the transform from that image's pixels into its cells. Layer 0 is the pre-LLM point
        (the projected patches in the input embeddings), 1..L the LLM layers.
        """
        from plainsight import render

        images = [im.convert("RGB") for im in request.images]
        canvas, offsets = render.compose_side_by_side(images) if len(images) > 1 else (images[0], [(0, 0)])
        inputs, n = self._inputs([VLMRequest([canvas], request.prompt, request.letters)])
        hidden = self.llm(**inputs, output_hidden_states=True, logits_to_keep=1).hidden_states
        self.forward_count += 1
        composite = geometry.plan(self.preprocess_spec, canvas.size)
        patch = self.featurizers[0].patch
        gh, gw = composite.out_size[1] // patch, composite.out_size[0] // patch
        if gh * gw != n:
            raise RuntimeError(f"{self.name}: {n} image tokens for a {gw}x{gh} patch grid")
        start = 1  # one row, no padding: the image tokens follow BOS
        cuts = [_cells(composite, (dx, dy), im.size, patch, (gh, gw)) for im, (dx, dy) in zip(images, offsets)]
        states = []
        for layer in hidden:
            grid = layer[0, start : start + n].float().cpu().reshape(gh, gw, -1).permute(2, 0, 1)
            per_image = []
            for (y0, y1, x0, x1), transform in cuts:
                cell = grid[:, y0:y1, x0:x1].contiguous()
                per_image.append(Features(cell, cell.mean(dim=(1, 2)), transform))
            states.append(per_image)
        return states


def _cells(composite: geometry.PointTransform, offset: tuple[int, int], size: tuple[int, int], patch: int,
           grid: tuple[int, int]) -> tuple[tuple[int, int, int, int], geometry.PointTransform]:  # fmt: skip
    """The patch cells an image pasted at ``offset`` of the composite covers, and its pixels → those cells."""
    (sx, sy), (ox, oy) = composite.scale, composite.offset
    dx, dy = offset
    w, h = size
    x0 = max(0, math.floor((dx * sx + ox) / patch))
    x1 = min(grid[1], math.ceil(((dx + w) * sx + ox) / patch))
    y0 = max(0, math.floor((dy * sy + oy) / patch))
    y1 = min(grid[0], math.ceil(((dy + h) * sy + oy) / patch))
    into = geometry.PointTransform.translation(dx, dy, size, composite.in_size).then(composite)
    cut = geometry.PointTransform.translation(-x0 * patch, -y0 * patch, composite.out_size,
                                              ((x1 - x0) * patch, (y1 - y0) * patch))  # fmt: skip
    return (y0, y1, x0, x1), into.then(cut)


class PrismaticOwnTower:
    """A Prismatic VLM's vision backbone as an encoder, lent by the loaded VLM (no second load).

    ``encode``: the tensor the projector receives — each featurizer's second-to-last block, prefix
    tokens dropped, concatenated — on the letterboxed input, as a patch grid; ``pooled`` is its mean
    token (as the LLaVA own tower's). ``encode_layers``: evenly spaced block outputs for the depth probe.
    """

    def __init__(self, vlm: PrismaticVLM, name: str | None = None):
        self.vlm = vlm
        self.name = name or f"{vlm.name}/own_tower"
        self.spec = vlm.preprocess_spec
        self.blocks = list(vlm.feature_blocks)
        self.device, self.dtype, self.batch_size = vlm.device, vlm.dtype, vlm.batch_size

    def projector_input(self, pixels: list[torch.Tensor]) -> torch.Tensor:
        return self.vlm.projector_input(pixels, self.blocks)

    def _checked(self, im: Image.Image, pixels: list[torch.Tensor]) -> geometry.PointTransform:
        transform = geometry.plan(self.spec, im.size)
        produced = (int(pixels[0].shape[-1]), int(pixels[0].shape[-2]))
        if transform.out_size != produced:
            raise RuntimeError(
                f"{self.name}: {self.spec.describe()} predicts {transform.out_size}, input is {produced}"
            )
        return transform

    @torch.inference_mode()
    def encode(self, images: list[Image.Image]) -> list[Features]:
        out: list[Features] = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            pixels = self.vlm.pixel_values(batch)
            tokens = self.projector_input(pixels)
            gh, gw = self.vlm.grid_size(pixels)
            grids = tokens.float().reshape(len(batch), gh, gw, -1).permute(0, 3, 1, 2).cpu()
            for im, grid in zip(batch, grids):
                out.append(Features(grid, grid.mean(dim=(1, 2)), self._checked(im, pixels)))
        return out

    @torch.inference_mode()
    def encode_layers(
        self, images: list[Image.Image], count: int = 4
    ) -> list[tuple[list[torch.Tensor], geometry.PointTransform]]:
        """Per image: ``count`` grids from evenly spaced blocks (probe3d's N/4 … N; featurizers concatenated)."""
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            pixels = self.vlm.pixel_values(batch)
            per_featurizer = []
            for f, x in zip(self.vlm.featurizers, pixels):
                indices = [b - 1 for b in probe_blocks(len(f.model.blocks), count)]
                unique = sorted(set(indices))
                inter = f.model.forward_intermediates(x, indices=unique, output_fmt="NCHW", intermediates_only=True)
                by_block = dict(zip(unique, inter))
                per_featurizer.append([by_block[b] for b in indices])
            levels = [torch.cat([grids[k] for grids in per_featurizer], dim=1).float().cpu() for k in range(count)]
            for i, im in enumerate(batch):
                out.append(([level[i] for level in levels], self._checked(im, pixels)))
        return out


# -------------------------------------------------------------------- building the parts


def create_featurizer(key: str, cfg: PrismaticConfig, *, meta: bool = False, weights: Path | None = None) -> nn.Module:
    """One featurizer as Prismatic builds it: ``timm.create_model(<timm id>, num_classes=0, img_size=...)``.

    ``meta``: parameters on the meta device (a checkpoint assigns them); ``weights``: timm's pretrained file.
    """
    import timm

    timm_id = cfg.timm_ids[key]
    kwargs = _timm_kwargs(key, timm_id, cfg)
    try:
        if weights is not None:
            return timm.create_model(timm_id, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, **kwargs)
        with torch.device("meta") if meta else torch.device("cpu"):
            return timm.create_model(timm_id, pretrained=False, **kwargs)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{cfg.folder}: cannot build the vision backbone {cfg.vision_backbone_id} ({timm_id}): {exc}"
        ) from None


def _build_vision(cfg: PrismaticConfig, state: dict[str, torch.Tensor] | None, path: Path) -> VisionBackbone:
    if state is None:  # a frozen backbone: timm's pretrained weights, from the local cache
        return VisionBackbone({key: create_featurizer(key, cfg, weights=timm_cache_file(timm_id))
                               for key, timm_id in cfg.timm_ids.items()}).eval()  # fmt: skip
    vision = VisionBackbone({key: create_featurizer(key, cfg, meta=True) for key in cfg.timm_ids})
    load_strict(vision, state, path, "vision_backbone", assign=True)
    leftover = [n for n, t in [*vision.named_parameters(), *vision.named_buffers()] if t.is_meta]
    if leftover:
        raise ConfigError(f"{path}: the vision backbone has tensors the checkpoint does not set: {leftover[:5]}")
    return vision.eval()


def llm_config_and_tokenizer(cfg: PrismaticConfig) -> tuple[Any, Any]:
    """The LLM's config and tokenizer as Prismatic sets them up: ``<PAD>`` added, vocabulary padded to 64."""
    from transformers import AutoConfig, AutoTokenizer

    folder = cfg.folder
    fix = (f"run `huggingface-cli download {cfg.llm_hub_id} config.json tokenizer.model tokenizer_config.json "
           f"special_tokens_map.json` where the hub is reachable, or put {LLM_CONFIG} (the LLM's config.json) and its "
           f"tokenizer files in {folder}")  # fmt: skip
    config_path = folder / LLM_CONFIG
    try:
        if config_path.is_file():
            config = AutoConfig.for_model(**json.loads(config_path.read_text()))
        else:
            config = AutoConfig.from_pretrained(cfg.llm_hub_id, local_files_only=True)
    except OSError:
        raise ModelUnavailable(f"the config of {cfg.llm_backbone_id} ({cfg.llm_hub_id}) is not in the local Hugging Face "
                               f"cache (the suite never downloads): {fix}") from None  # fmt: skip
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise ConfigError(f"{config_path}: not a transformers config ({exc})") from None
    if config.model_type != "llama":
        where = config_path if config_path.is_file() else cfg.llm_hub_id
        raise ConfigError(f"{where}: model_type is {config.model_type!r}; {cfg.llm_backbone_id} is a Llama-2 model")
    try:
        where = folder if (folder / "tokenizer_config.json").is_file() else cfg.llm_hub_id
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, model_max_length=cfg.llm_max_length)
    except OSError:
        raise ModelUnavailable(f"the tokenizer of {cfg.llm_backbone_id} ({cfg.llm_hub_id}) is not in the local Hugging "
                               f"Face cache (the suite never downloads): {fix}") from None  # fmt: skip
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    tokenizer.padding_side = "left"
    config.pad_token_id = tokenizer.pad_token_id
    # LLaMa2LLMBackbone: resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    config.vocab_size = math.ceil(len(tokenizer) / PAD_MULTIPLE) * PAD_MULTIPLE
    config.use_cache = True
    return config, tokenizer


def _build_llm(config: Any, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """``LlamaForCausalLM`` built on the meta device, its parameters the checkpoint's tensors (no second copy)."""
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        llm = LlamaForCausalLM(config)
    load_strict(LLMBackbone(llm), _llm_state(state), path, "llm_backbone", assign=True)
    _rebuild_meta_buffers(llm, config)
    return llm.eval()


def load_prismatic(entry: Any, *, device: str = "cpu", dtype: str | torch.dtype = torch.float32) -> PrismaticVLM:
    """The VLM of a models.toml entry whose source is ``prismatic:<folder>``."""
    if entry.attention_diagnostic:
        raise ConfigError(f"[models.{entry.name}]: the attention diagnostic does not support Prismatic models yet")
    if entry.adapter_dir is not None:
        raise ConfigError(f"[models.{entry.name}]: plainsight adapt does not support Prismatic models yet")
    return PrismaticVLM.from_folder(entry.name, _folder(entry), device=device, dtype=torch_dtype(dtype),
                                    batch_size=entry.batch_size)  # fmt: skip


def _folder(entry: Any) -> Path:
    return Path(entry.resolved_source().removeprefix(PRISMATIC))


BACKENDS.register("vlm:prismatic", Backend(load_prismatic, lambda entry: preprocess_spec_of(_folder(entry))))
