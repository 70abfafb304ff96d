"""The depth probe: a DPT-style head on four frozen intermediate layers, trained on NYUv2 (probe3d's recipe).

Recipe (``ProbeRecipe``, after probe3d ``train_depth.py``): features of blocks N/4, N/2,
3N/4 and N; 1×1 projections to ``hidden`` channels; fusion blocks of residual conv units
from the deepest layer up; a conv head predicting ``bins`` logits, upsampled to the
encoder's input resolution; depth = Σ softmax-free bin weights (ReLU + 0.1, normalised)
× bin centres (AdaBins "linear"); loss 10 · SigLoss(λ = 0.85) + 0.5 · multi-scale
gradient loss on valid (> 0) pixels; AdamW with linear warm-up then cosine decay per
step. Deviations, for a frozen backbone run once: features are computed once per frame
(no augmentation), and targets are the depth map mapped exactly through the encoder's
own preprocessing (nearest pixel, 0 where the preprocessing padded).

A trained head is cached on disk under a key of encoder fingerprint + data fingerprint +
recipe; a file lock makes parallel workers wait for one training instead of repeating it.
``RECIPES``: ``full`` (probe3d's sizes, for GPU runners) and ``small`` (CPU, seconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from plainsight.geometry import PointTransform
from plainsight.items import canonical_hash

log = logging.getLogger("plainsight")

PROBE_VERSION = 2  # bump when the cached files change shape (2: meta records in_channels)
MAX_GRID = 32
TRAININGS: list[str] = []  # cache keys trained in this process, in order (tests count them)


@dataclass(frozen=True)
class ProbeRecipe:
    hidden: int = 512
    bins: int = 256
    min_depth: float = 0.001
    max_depth: float = 10.0
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    warmup_epochs: float = 1.5
    weight_decay: float = 0.01
    sig_weight: float = 10.0
    sig_lambda: float = 0.85
    grad_weight: float = 0.5
    grad_scales: int = 4
    layers: int = 4
    seed: int = 0
    shuffle_targets: bool = False  # control: each frame is trained on another frame's depth
    max_output: int | None = None  # predict (and train) at most this many pixels a side, then upsample


RECIPES = {
    "full": ProbeRecipe(),
    "small": ProbeRecipe(hidden=32, bins=64, epochs=40, lr=2e-3, warmup_epochs=2.0, max_output=48),
}


def recipe_for(name: str, device: str) -> ProbeRecipe:
    """``auto`` → ``full`` on CUDA, ``small`` on CPU; otherwise a RECIPES name."""
    if name == "auto":
        name = "full" if str(device).startswith("cuda") else "small"
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown probe recipe {name!r}; use auto or one of {sorted(RECIPES)}") from None


# ---------------------------------------------------------------- the head


class ResidualConvUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.skip_unit = ResidualConvUnit(channels)
        self.out_unit = ResidualConvUnit(channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.skip_unit(skip)
        return self.out_unit(x)


class DPTHead(nn.Module):
    """Layers (each (B, C_i, gh, gw)) → depth (B, H, W) in metres at ``out_size`` = (H, W)."""

    def __init__(self, in_channels: list[int], recipe: ProbeRecipe):
        super().__init__()
        self.project = nn.ModuleList([nn.Conv2d(c, recipe.hidden, 1) for c in in_channels])
        self.fuse = nn.ModuleList([FusionBlock(recipe.hidden) for _ in in_channels])
        self.head = nn.Sequential(
            nn.Conv2d(recipe.hidden, recipe.hidden // 2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(recipe.hidden // 2, recipe.bins, 3, padding=1),
        )  # fmt: skip
        self.register_buffer("centres", torch.linspace(recipe.min_depth, recipe.max_depth, recipe.bins))

    def forward(self, layers: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        projected = [proj(x) for proj, x in zip(self.project, layers)]
        path = self.fuse[-1](projected[-1])
        for block, skip in zip(reversed(self.fuse[:-1]), reversed(projected[:-1])):
            path = block(path, skip)
        gh = path.shape[-2]
        if out_size[0] >= 2 * gh:  # upsample coarse ViT grids before the head, as DPT does
            path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=False)
        logits = F.interpolate(self.head(path), size=out_size, mode="bilinear", align_corners=False)
        weights = F.relu(logits) + 0.1
        weights = weights / weights.sum(dim=1, keepdim=True)
        return (weights * self.centres[None, :, None, None]).sum(dim=1)


def sig_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, lam: float) -> torch.Tensor:
    g = torch.log(pred[valid].clamp_min(1e-3)) - torch.log(target[valid])
    return torch.sqrt((g**2).mean() - lam * g.mean() ** 2 + 1e-8)


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, scales: int) -> torch.Tensor:
    """Multi-scale gradient matching of log depth (MiDaS style) over valid pixel pairs."""
    diff = torch.where(valid, torch.log(pred.clamp_min(1e-3)) - torch.log(target.clamp_min(1e-3)), 0.0)
    mask = valid.float()
    total = pred.new_zeros(())
    for s in range(scales):
        step = 2**s
        d, m = diff[:, ::step, ::step], mask[:, ::step, ::step]
        gx = (d[:, :, 1:] - d[:, :, :-1]).abs() * m[:, :, 1:] * m[:, :, :-1]
        gy = (d[:, 1:] - d[:, :-1]).abs() * m[:, 1:] * m[:, :-1]
        total = total + (gx.sum() + gy.sum()) / m.sum().clamp_min(1.0)
    return total


# ---------------------------------------------------------------- features and targets


def layered_features(
    encoder: Any, images: list[Image.Image], count: int
) -> list[tuple[list[torch.Tensor], PointTransform]]:
    """``count`` intermediate patch grids per image; an encoder without layers (pixels) gives its one grid.

    A dense grid (pixels: one cell per pixel) is average-pooled to at most MAX_GRID cells a side, ViT-like.
    """
    if hasattr(encoder, "encode_layers"):
        return encoder.encode_layers(images, count)
    out = []
    for f in encoder.encode(images):
        patches = f.patches
        stride = math.ceil(max(patches.shape[-2:]) / MAX_GRID)
        if stride > 1:
            patches = F.avg_pool2d(patches[None], stride, ceil_mode=True)[0]
        out.append(([patches], f.transform))
    return out


def map_depth(depth: np.ndarray, transform: PointTransform) -> np.ndarray:
    """The depth map (H, W) as the encoder's input sees it: nearest source pixel, 0 where there is none."""
    w_out, h_out = transform.out_size
    xs = (np.arange(w_out) + 0.5 - transform.offset[0]) / transform.scale[0] - 0.5
    ys = (np.arange(h_out) + 0.5 - transform.offset[1]) / transform.scale[1] - 0.5
    xi, yi = np.round(xs).astype(int), np.round(ys).astype(int)
    h, w = depth.shape
    out = depth[np.clip(yi, 0, h - 1)][:, np.clip(xi, 0, w - 1)].astype(np.float32)
    out[(yi < 0) | (yi >= h), :] = 0.0
    out[:, (xi < 0) | (xi >= w)] = 0.0
    return out


def output_size(size: tuple[int, int], recipe: ProbeRecipe) -> tuple[int, int]:
    """(H, W) the head predicts for an input of (H, W): the input itself, or ``max_output`` a side at most."""
    if recipe.max_output is None or max(size) <= recipe.max_output:
        return size
    stride = math.ceil(max(size) / recipe.max_output)
    return math.ceil(size[0] / stride), math.ceil(size[1] / stride)


def pool_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mean of the valid (> 0) depths in each block of a depth map reduced to ``size`` = (H, W); 0 where none."""
    if depth.shape == tuple(size):
        return depth
    stride = math.ceil(depth.shape[0] / size[0])
    h, w = size[0] * stride, size[1] * stride
    padded = np.zeros((h, w), dtype=np.float32)
    padded[: depth.shape[0], : depth.shape[1]] = depth
    blocks = padded.reshape(size[0], stride, size[1], stride)
    count = (blocks > 0).sum(axis=(1, 3))
    return np.where(count > 0, blocks.sum(axis=(1, 3)) / np.maximum(count, 1), 0.0).astype(np.float32)


def box_in_input(box: tuple[float, float, float, float], transform: PointTransform) -> tuple[int, int, int, int] | None:
    """A source-pixel box [x1, y1, x2, y2] as inclusive input-pixel bounds, clipped; None when cropped away."""
    (x1, y1), (x2, y2) = transform.map((box[0], box[1])), transform.map((box[2], box[3]))
    w, h = transform.out_size
    lo_x, hi_x = max(0, math.ceil(x1)), min(w - 1, math.floor(x2))
    lo_y, hi_y = max(0, math.ceil(y1)), min(h - 1, math.floor(y2))
    if lo_x > hi_x or lo_y > hi_y:
        return None
    return lo_x, lo_y, hi_x, hi_y


# ---------------------------------------------------------------- training and the cache


@dataclass
class DepthProbe:
    head: DPTHead
    recipe: ProbeRecipe
    key: str
    info: dict[str, Any]
    device: str = "cpu"

    @torch.inference_mode()
    def predict(self, encoder: Any, images: list[Image.Image]) -> list[tuple[np.ndarray, PointTransform]]:
        """Predicted depth at each image's encoder-input resolution, with the source→input transform."""
        out = []
        for layers, transform in layered_features(encoder, images, self.recipe.layers):
            x = [t[None].float().to(self.device) for t in layers]
            w, h = transform.out_size
            depth = self.head(x, output_size((h, w), self.recipe))
            depth = F.interpolate(depth[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            out.append((depth[0].float().cpu().numpy(), transform))
        return out


def data_fingerprint(paths: list[Path]) -> str:
    """SHA-256 over the training files' bytes (streamed)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def cache_key(encoder_fingerprint: str, data: str, recipe: ProbeRecipe) -> str:
    return canonical_hash({"encoder": encoder_fingerprint, "data": data, "recipe": asdict(recipe), "v": PROBE_VERSION})


def train_head(
    frames: list[tuple[list[torch.Tensor], np.ndarray]], recipe: ProbeRecipe, device: str
) -> tuple[DPTHead, list[float]]:
    """Fit a head on (layers, target depth at input resolution) pairs; returns it and the per-epoch mean loss."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    targets = [t for _, t in frames]
    if recipe.shuffle_targets:  # a derangement: every frame is trained on another frame's depth
        order = rng.permutation(len(frames))
        shuffled = [targets[0]] * len(frames)
        for a, b in zip(order, np.roll(order, 1)):
            shuffled[a] = targets[b]
        if any(x.shape != y.shape for x, y in zip(shuffled, targets)):
            raise ValueError("the shuffled-target control needs frames of one size")
        targets = shuffled
    head = DPTHead([t.shape[0] for t in frames[0][0]], recipe).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(frames) / recipe.batch_size)
    total, warmup = recipe.epochs * steps_per_epoch, max(1, int(recipe.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))
        ),
    )
    history = []
    for _ in range(recipe.epochs):
        losses = []
        order = rng.permutation(len(frames))
        for start in range(0, len(frames), recipe.batch_size):
            batch = [int(k) for k in order[start : start + recipe.batch_size]]
            shapes = {tuple(targets[k].shape) for k in batch}
            for shape in shapes:  # frames of one size per forward (inputs may differ in size)
                group = [k for k in batch if tuple(targets[k].shape) == shape]
                layers = [
                    torch.stack([frames[k][0][i] for k in group]).float().to(device) for i in range(len(frames[0][0]))
                ]
                target = torch.from_numpy(np.stack([targets[k] for k in group])).to(device)
                valid = target > 0
                if not valid.any():
                    continue
                pred = head(layers, shape)
                loss = recipe.sig_weight * sig_loss(pred, target, valid, recipe.sig_lambda)
                loss = loss + recipe.grad_weight * gradient_loss(pred, target, valid, recipe.grad_scales)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            sched.step()
        history.append(float(np.mean(losses)) if losses else float("nan"))
    return head.eval(), history


def ensure_probe(
    encoder: Any,
    encoder_fingerprint: str,
    frames_source: Any,
    recipe: ProbeRecipe,
    cache_dir: Path,
    *,
    device: str = "cpu",
) -> DepthProbe:
    """The cached probe for (encoder, data, recipe), training it once under a file lock when absent.

    ``frames_source`` is an :class:`~plainsight.data.nyuv2.NYUv2`; its train split is used.
    """
    from filelock import FileLock
    from safetensors.torch import load_file, save_file

    data = data_fingerprint([frames_source.path, frames_source.path.parent / "splits.mat"])
    key = cache_key(encoder_fingerprint, data, recipe)
    cache_dir.mkdir(parents=True, exist_ok=True)
    weights, meta_path = cache_dir / f"depth-{key}.safetensors", cache_dir / f"depth-{key}.json"
    with FileLock(str(cache_dir / f"depth-{key}.lock")):
        if not weights.is_file():
            started = time.perf_counter()
            frames = []
            for index in frames_source.train:
                image, depth = frames_source.frame(int(index))
                ((layers, transform),) = layered_features(encoder, [Image.fromarray(image)], recipe.layers)
                target = map_depth(depth, transform)
                frames.append(([t.half() for t in layers], pool_depth(target, output_size(target.shape, recipe))))
            head, history = train_head(frames, recipe, device)
            save_file({k: v.contiguous().cpu() for k, v in head.state_dict().items()}, str(weights))
            meta = {"key": key, "encoder": encoder_fingerprint, "data": data, "recipe": asdict(recipe),
                    "in_channels": [int(t.shape[0]) for t in frames[0][0]], "train_frames": len(frames), "loss_per_epoch": [round(v, 5) for v in history],
                    "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
            TRAININGS.append(key)
            log.info("trained depth probe %s on %d frames in %.1fs", key, len(frames), meta["seconds"])
        meta = json.loads(meta_path.read_text())
        head = DPTHead(meta["in_channels"], recipe)
        head.load_state_dict(load_file(str(weights)))
    # Only what the run's result depends on: whether this process trained or read the cache is logged, not reported.
    info = {"key": key, "recipe": asdict(recipe), "train_frames": meta["train_frames"],
            "final_loss": meta["loss_per_epoch"][-1] if meta["loss_per_epoch"] else None}  # fmt: skip
    return DepthProbe(head.to(device).eval(), recipe, key, info, device)


def encoder_fingerprint(entry: Any, encoder: Any) -> str:
    """Name, source, layer choice and the weight files' identity (content hash up to 256 MB, else size + name)."""
    parts: dict[str, Any] = {"name": entry.name, "source": entry.source, "revision": entry.revision,
                             "feature_layer": entry.feature_layer, "options": entry.options}  # fmt: skip
    try:
        folder = Path(entry.resolved_source())
    except Exception:  # noqa: BLE001 - a hub id without a local copy has no files to hash
        folder = None
    if folder is not None and folder.is_dir():
        files = {}
        for path in sorted(folder.iterdir()):
            if path.suffix in (".safetensors", ".bin", ".pth", ".json") and path.is_file():
                real = Path(os.path.realpath(path))
                size = real.stat().st_size
                files[path.name] = data_fingerprint([real]) if size <= 256 << 20 else f"{size}:{real.name}"
        parts["files"] = files
    return canonical_hash(parts)
