"""The pocket encoder: a small CLIP-config ViT trained on CPU on a train split of the embedded benchmark.

The train split is the embedded benchmark built with another seed (``build_all(dir, seed=1)``): other
renders, other photos crops, other item ids than the evaluation data (``fixtures/data``, seed 0).
``build.check_disjoint`` stops the build when a train image's pixels equal an evaluation image's.

Objectives (each the readout's own decision rule, made differentiable, on the train items' labels):

- correspondence (low-level, semantic, functional items): cosine similarity of L2-normalised
  last-layer patch features bilinearly sampled at REF and A–D, cross-entropy over the candidates;
- object_3d (MOCHI trials): minus the mean cosine similarity of each view's pooled feature (the
  pooler's CLS, which the encoder entry reads, and the mean patch token, which the own tower reads)
  to the others, cross-entropy over the views;
- art style: minus the MSE between Gram matrices of last-layer patch features, cross-entropy;
- depth: per-patch log-depth (centred per image) regressed linearly from the probe's four blocks,
  on the NYUv2-format train rooms' depth maps.

The images go through the saved processor exactly as at evaluation (squashed to ``image_size``²,
CLIP normalisation), and points through ``geometry.plan`` as the readouts map them. Deterministic
on CPU: same seed and data → the same ``model.safetensors`` bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Low-level matching items are left out: the HPatches twin's reference image (1.ppm, the photo crop itself) is
# the same for every seed, so its items would put evaluation images into training. Low-level matching is
# learnt self-supervised instead (``warp``: random affine warps and photometric changes of the train renders).
CORRESPONDENCE_TASKS = ("semantic_correspondence", "functional_correspondence")


@dataclass(frozen=True)
class EncoderRecipe:
    image_size: int = 96
    patch: int = 8
    hidden: int = 64
    layers: int = 4
    heads: int = 4
    mlp: int = 128
    steps: int = 600
    lr: float = 2e-3
    weight_decay: float = 0.05
    seed: int = 0
    corr_batch: int = 8
    odd_batch: int = 4
    style_batch: int = 4
    depth_batch: int = 4
    warp_batch: int = 4
    warp_points: int = 48
    temperature: float = 0.1
    weights: dict = field(default_factory=lambda: {"corr": 1.0, "odd": 1.0, "style": 1.0, "depth": 1.0, "warp": 1.0})


def image_processor(image_size: int) -> Any:
    """Squash to image_size² (no crop, so every point and box stays visible), CLIP normalisation."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size}, do_center_crop=False,
        crop_size={"height": image_size, "width": image_size},
    )  # fmt: skip


def vision_config(recipe: EncoderRecipe) -> Any:
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=recipe.hidden, intermediate_size=recipe.mlp, num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads, image_size=recipe.image_size, patch_size=recipe.patch,
        projection_dim=recipe.hidden,
    )  # fmt: skip


def probe_blocks(n_blocks: int) -> list[int]:
    from plainsight.models.encoders import probe_blocks as blocks

    return blocks(n_blocks, 4)


# -- the train set --------------------------------------------------------------------------------
def image_key(image: Any) -> str:
    """Content hash of an image (RGB bytes and size): the train pool's dedup key and the disjointness check's."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    return hashlib.sha256(image.tobytes() + repr(image.size).encode()).hexdigest()


class ImagePool:
    """Unique train images as processor outputs, addressed by index (dedup by content hash)."""

    def __init__(self, processor: Any):
        self.processor = processor
        self.index: dict[str, int] = {}
        self.pixels: list[torch.Tensor] = []
        self.hashes: list[str] = []

    def add(self, image: Any) -> int:
        from PIL import Image

        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        image = image.convert("RGB")
        key = image_key(image)
        if key not in self.index:
            self.index[key] = len(self.pixels)
            self.hashes.append(key)
            self.pixels.append(self.processor(images=[image], return_tensors="pt")["pixel_values"][0])
        return self.index[key]

    def tensor(self) -> torch.Tensor:
        return torch.stack(self.pixels)


@dataclass
class TrainSet:
    pixels: torch.Tensor  # (N, 3, S, S)
    corr: list[tuple[int, int, np.ndarray, np.ndarray, int]]  # (image a, image b, ref grid (2,), cands (k, 2), gold)
    odd: list[tuple[list[int], int]]
    style: list[tuple[int, list[int], int]]
    depth: list[tuple[int, np.ndarray]]  # (image, (gh, gw) centred log depth, NaN where unknown)
    counts: dict[str, int]
    image_hashes: list[str]


def build_train_set(root: Path, recipe: EncoderRecipe, *, limit: int | None = None) -> TrainSet:
    """Items of the four readout families and NYUv2-format depth frames from the train data folder ``root``."""
    from plainsight import geometry
    from plainsight.data.nyuv2 import open_nyuv2
    from plainsight.tasks import LoadRequest, get_task

    processor = image_processor(recipe.image_size)
    spec = geometry.spec_from_hf(processor)
    pool = ImagePool(processor)
    corr, odd, style, depth = [], [], [], []
    request = LoadRequest(data_root=Path(root), seed=0, limit=limit)
    for task_id in CORRESPONDENCE_TASKS:
        for item in get_task(task_id).load_items(request):
            a, b = item.images[0], item.images[1]
            ia, ib = pool.add(a.load()), pool.add(b.load())
            ref = np.array(geometry.plan(spec, a.size).to_grid(a.points["REF"]), dtype=np.float32)
            tb = geometry.plan(spec, b.size)
            cands = np.array([tb.to_grid(b.points[letter]) for letter in item.choices], dtype=np.float32)
            corr.append((ia, ib, ref, cands, item.choices.index(item.gold)))
    for item in get_task("object_3d").load_items(request):
        odd.append(([pool.add(im) for im in item.load_images()], item.choices.index(item.gold)))
    for item in get_task("art_style").load_items(request):
        ids = [pool.add(im) for im in item.load_images()]
        style.append((ids[0], ids[1:], item.choices.index(item.gold)))
    nyu = open_nyuv2(Path(root))
    grid = recipe.image_size // recipe.patch
    frames = sorted(set(nyu.train.tolist()) | set(nyu.test.tolist()))
    if limit is not None:
        frames = frames[:limit]
    for index in frames:
        image, metres = nyu.frame(int(index))
        ids = pool.add(image)
        d = torch.from_numpy(metres)[None, None]
        valid = (d > 0).float()
        logd = torch.where(d > 0, d.clamp_min(1e-3).log(), torch.zeros_like(d))
        # Squash to the grid as the processor squashes the image: the mean log depth of each patch's pixels.
        sums = F.adaptive_avg_pool2d(logd * valid, grid)
        share = F.adaptive_avg_pool2d(valid, grid)
        target = torch.where(share > 0.5, sums / share.clamp_min(1e-6), torch.full_like(sums, float("nan")))[0, 0]
        target = target - torch.nanmean(target)
        depth.append((ids, target.numpy()))
    counts = {"corr": len(corr), "odd": len(odd), "style": len(style), "depth": len(depth), "images": len(pool.pixels)}
    return TrainSet(pool.tensor(), corr, odd, style, depth, counts, pool.hashes)


# -- losses ---------------------------------------------------------------------------------------
def _grid_tokens(hidden: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, 1 + g², C) tokens → (B, C, g, g) patch grid (CLS dropped)."""
    b, _, c = hidden.shape
    return hidden[:, 1:].reshape(b, grid, grid, c).permute(0, 3, 1, 2)


def _sample(fmap: torch.Tensor, points: np.ndarray) -> torch.Tensor:
    """(C, g, g) map, (N, 2) grid coords → (N, C) unit features, as readouts/correspondence samples them."""
    grid = torch.from_numpy(np.asarray(points, dtype=np.float32)).reshape(1, 1, -1, 2)
    sampled = F.grid_sample(F.normalize(fmap, dim=0)[None], grid, mode="bilinear", padding_mode="border",
                            align_corners=False)[0, :, 0, :].T  # fmt: skip
    return F.normalize(sampled, dim=-1)


def _odd_scores(pooled: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(pooled, dim=-1)
    sims = unit @ unit.T
    n = sims.shape[0]
    return -(sims.sum(dim=1) - sims.diagonal()) / (n - 1)


def _gram(fmap: torch.Tensor) -> torch.Tensor:
    flat = fmap.reshape(fmap.shape[0], -1)
    return flat @ flat.T / flat.shape[1]


class PocketTrainer:
    def __init__(self, recipe: EncoderRecipe, data: TrainSet):
        from transformers import CLIPVisionModel

        self.recipe, self.data = recipe, data
        torch.manual_seed(recipe.seed)
        self.model = CLIPVisionModel(vision_config(recipe))
        self.grid = recipe.image_size // recipe.patch
        self.blocks = probe_blocks(recipe.layers)
        self.depth_head = torch.nn.Linear(recipe.hidden * len(self.blocks), 1)
        params = list(self.model.parameters()) + list(self.depth_head.parameters())
        self.optimiser = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.generator = torch.Generator().manual_seed(recipe.seed)
        self.orders: dict[str, list[int]] = {}
        self.log: list[dict[str, float]] = []

    def _take(self, name: str, pool: list, n: int) -> list:
        order = self.orders.setdefault(name, [])
        if not pool or n <= 0:
            return []
        while len(order) < n:
            order.extend(torch.randperm(len(pool), generator=self.generator).tolist())
        chosen, self.orders[name] = order[:n], order[n:]
        return [pool[i] for i in chosen]

    def step(self, step: int) -> dict[str, float]:
        r, d = self.recipe, self.data
        corr = self._take("corr", d.corr, r.corr_batch)
        odd = self._take("odd", d.odd, r.odd_batch)
        style = self._take("style", d.style, r.style_batch)
        depth = self._take("depth", d.depth, r.depth_batch)
        wanted: list[int] = []
        for a, b, *_ in corr:
            wanted += [a, b]
        for ids, _ in odd:
            wanted += ids
        for ref, cands, _ in style:
            wanted += [ref, *cands]
        wanted += [i for i, _ in depth]
        unique = sorted(set(wanted))
        slot = {img: k for k, img in enumerate(unique)}
        self.model.train()
        out = self.model(pixel_values=d.pixels[unique], output_hidden_states=True)
        hidden = out.hidden_states
        last = _grid_tokens(
            hidden[-1], self.grid
        )  # what the encoder entry (feature_layer unset) and the own tower read
        losses: dict[str, torch.Tensor] = {}
        t = r.temperature
        if corr:
            terms = []
            for a, b, ref, cands, gold in corr:
                fr = _sample(last[slot[a]], ref[None])[0]
                fc = _sample(last[slot[b]], cands)
                terms.append(F.cross_entropy((fc @ fr)[None] / t, torch.tensor([gold])))
            losses["corr"] = torch.stack(terms).mean()
        if odd:
            terms = []
            mean_patch = hidden[-1][:, 1:].mean(dim=1)
            for ids, gold in odd:
                rows = [slot[i] for i in ids]
                for pooled in (out.pooler_output[rows], mean_patch[rows]):
                    terms.append(F.cross_entropy(_odd_scores(pooled)[None] / t, torch.tensor([gold])))
            losses["odd"] = torch.stack(terms).mean()
        if style:
            terms = []
            for ref, cands, gold in style:
                g0 = _gram(last[slot[ref]])
                mse = torch.stack([((_gram(last[slot[c]]) - g0) ** 2).mean() for c in cands])
                logits = -mse / (mse.detach().mean() + 1e-8) * 2.0
                terms.append(F.cross_entropy(logits[None], torch.tensor([gold])))
            losses["style"] = torch.stack(terms).mean()
        if depth:
            rows = [slot[i] for i in (i for i, _ in depth)]
            feats = torch.cat([_grid_tokens(hidden[b][rows], self.grid) for b in self.blocks], dim=1)
            pred = self.depth_head(feats.permute(0, 2, 3, 1))[..., 0]
            pred = pred - pred.mean(dim=(1, 2), keepdim=True)
            target = torch.from_numpy(np.stack([tgt for _, tgt in depth]))
            mask = torch.isfinite(target)
            losses["depth"] = ((pred - torch.nan_to_num(target)) ** 2)[mask].mean() * 10.0
        if r.warp_batch and r.weights.get("warp", 1.0):
            losses["warp"] = self._warp_loss()
        total = sum(r.weights.get(k, 1.0) * v for k, v in losses.items())
        self.optimiser.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(list(self.model.parameters()) + list(self.depth_head.parameters()), 1.0)
        lr = r.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / r.steps))
        for group in self.optimiser.param_groups:
            group["lr"] = lr
        self.optimiser.step()
        row = {k: round(float(v.detach()), 5) for k, v in losses.items()}
        self.log.append(row)
        return row

    def _warp_loss(self) -> torch.Tensor:
        """Dense InfoNCE between a train image and a random affine warp of it with other colours and contrast."""
        r, g = self.recipe, self.generator
        n = len(self.data.pixels)
        ids = torch.randint(0, n, (r.warp_batch,), generator=g)
        src = self.data.pixels[ids]
        b = len(ids)
        angle = (torch.rand(b, generator=g) * 2 - 1) * 0.6
        scale = torch.exp((torch.rand(b, generator=g) * 2 - 1) * 0.35)
        shift = (torch.rand(b, 2, generator=g) * 2 - 1) * 0.15
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        size = src.shape[-1]
        warped = F.grid_sample(src, F.affine_grid(theta, list(src.shape), align_corners=False), mode="bilinear",
                               padding_mode="reflection", align_corners=False)  # fmt: skip
        gain = torch.exp((torch.rand(b, 3, 1, 1, generator=g) * 2 - 1) * 0.3)
        bias = (torch.rand(b, 3, 1, 1, generator=g) * 2 - 1) * 0.4
        warped = warped * gain + bias + torch.randn(warped.shape, generator=g) * 0.05
        self.model.train()
        hidden = self.model(pixel_values=torch.cat([src, warped]), output_hidden_states=True).hidden_states[-1]
        maps = _grid_tokens(hidden, self.grid)
        terms = []
        for k in range(b):
            pts = torch.rand(r.warp_points, 2, generator=g) * 1.6 - 0.8  # points of the warped view
            homog = torch.cat([pts, torch.ones(len(pts), 1)], 1)
            source = homog @ theta[k].T  # where they came from in the source view
            keep = (source.abs() < 0.95).all(dim=1)
            if keep.sum() < 4:
                continue
            fw = _sample(maps[b + k], pts[keep].numpy())
            fs = _sample(maps[k], source[keep].numpy())
            logits = fw @ fs.T / r.temperature
            terms.append(F.cross_entropy(logits, torch.arange(len(logits))))
        del size
        return torch.stack(terms).mean() if terms else hidden.sum() * 0.0


def train_pocket_encoder(train_root: Path, out_dir: Path, recipe: EncoderRecipe | None = None, *,
                         limit: int | None = None, log_every: int = 50, data: TrainSet | None = None) -> dict:  # fmt: skip
    """Train on ``train_root`` (an embedded-benchmark folder of another seed) and write an HF folder to ``out_dir``."""
    recipe = recipe or EncoderRecipe()
    started = time.perf_counter()
    data = data or build_train_set(Path(train_root), recipe, limit=limit)
    prepared = time.perf_counter() - started
    trainer = PocketTrainer(recipe, data)
    t0 = time.perf_counter()
    for step in range(recipe.steps):
        row = trainer.step(step)
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}/{recipe.steps} {row} {time.perf_counter() - t0:.0f}s", flush=True)
    seconds = time.perf_counter() - t0
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.eval()
    trainer.model.save_pretrained(out_dir)
    image_processor(recipe.image_size).save_pretrained(out_dir)
    record = {
        "recipe": asdict(recipe), "train_counts": data.counts, "prepare_seconds": round(prepared, 1),
        "train_seconds": round(seconds, 1), "loss_first": trainer.log[0] if trainer.log else {},
        "loss_last": trainer.log[-1] if trainer.log else {},
    }  # fmt: skip
    stable = {k: v for k, v in record.items() if not k.endswith("_seconds")}  # the folder is byte-identical per seed
    (out_dir / "pocket_encoder.json").write_text(json.dumps(stable, indent=1, sort_keys=True) + "\n")
    return record
