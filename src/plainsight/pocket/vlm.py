"""The pocket VLM: the frozen pocket encoder under an MLP projector and a small Llama, in the LLaVA layout.

The folder is a plain ``LlavaForConditionalGeneration`` + ``LlavaProcessor`` (tiny-llava's tokenizer and
chat template, the encoder's squash-to-square image size), so the generic adapter loads it and
``pairs_with = "own_tower"`` reads the tower where the projector reads it (``vision_feature_layer = -1``,
CLS dropped: the last block's patch tokens, which are also what the encoder entry's readouts read).

Training (``train_pocket_vlm``): the vision tower frozen, projector and LLM trained together (as in Prismatic's
single stage) on instruction-style multiple-choice items of five tasks (low-level matching left out, see
``VLMRecipe.tasks``) from the *train* split (other seeds than the evaluation data), with the loss ``plainsight adapt`` uses — the cross-entropy of
the gold letter among the item's letters at the answer position, in the same forward the scorer runs.
Nothing tells the model the answer but the items' own gold letters.

What learns (CPU, 2 threads): the loop itself is sound (32 depth items are memorised in ~100 steps at lr 3e-3),
but a random 2-layer LM trained on all tasks at once stays at chance on every task and answers one letter. An
alignment stage first — ``align_steps=600`` on art_style alone at lr 1e-3 — gets it to read the image; then
``steps=240`` at ``instruct_lr=2e-4`` over all five tasks with art_style drawn half the time keeps that. That is
``build.POCKET``'s recipe; it trains in about 4 minutes on two threads.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

TASKS = ("low_level_matching", "semantic_correspondence", "functional_correspondence", "depth", "object_3d",
         "art_style")  # fmt: skip


@dataclass(frozen=True)
class VLMRecipe:
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    steps: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    seed: int = 0
    image_mode: str = "separate"
    # Alignment stage: the first ``align_steps`` steps draw only from ``align_tasks`` (an image→letter task
    # whose answer is visible in one image), then the round robin over ``tasks`` runs for ``steps``.
    align_steps: int = 0
    align_tasks: tuple[str, ...] = ("depth",)
    warmup: int = 30
    instruct_lr: float | None = None  # the instruction stage's lr after an alignment stage (None: ``lr``)
    # Low-level matching is left out: every HPatches-twin item shows the sequence's 1.ppm, which is the same
    # image at every seed (see encoder.CORRESPONDENCE_TASKS); its prompt is the other correspondence prompts' kin.
    tasks: tuple[str, ...] = tuple(t for t in TASKS if t != "low_level_matching")


def build_pocket_vlm(encoder_dir: Path, out_dir: Path, recipe: VLMRecipe | None = None) -> Path:
    """An untrained pocket VLM folder: the encoder's weights as the vision tower, random projector and LLM."""
    from transformers import CLIPVisionModel, LlavaConfig, LlavaForConditionalGeneration

    from plainsight.models.tiny import _llava_processor

    recipe = recipe or VLMRecipe()
    encoder = CLIPVisionModel.from_pretrained(encoder_dir, local_files_only=True)
    vision = encoder.config
    tok, processor = _llava_processor(int(vision.image_size), int(vision.patch_size))
    h = recipe.text_hidden
    config = LlavaConfig(
        # Where the encoder was read from (``_name_or_path``) is no part of the model, and differs per build.
        vision_config={k: v for k, v in vision.to_dict().items() if k != "_name_or_path"},
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=h, intermediate_size=2 * h,
                         num_hidden_layers=recipe.text_layers, num_attention_heads=recipe.text_heads,
                         num_key_value_heads=recipe.text_heads, max_position_embeddings=2048,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default", projector_hidden_act="gelu",
    )  # fmt: skip
    torch.manual_seed(recipe.seed)
    model = LlavaForConditionalGeneration(config).eval()
    missing, unexpected = model.model.vision_tower.load_state_dict(encoder.state_dict(), strict=True)
    assert not missing and not unexpected
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _entry(folder: Path, image_mode: str) -> Any:
    from plainsight.models.registry import ModelEntry

    return ModelEntry(name="pocket-vlm", kind="vlm", source=str(Path(folder).resolve()), image_mode=image_mode,
                      pairs_with="own_tower", dtype="float32", device="cpu")  # fmt: skip


def train_requests(vlm: Any, entry: Any, roots: list[Path], tasks: tuple[str, ...], *,
                   limit: int | None = None) -> dict[str, tuple[list, list]]:  # fmt: skip
    """Per task, the train items as the evals show them (markers drawn, composed) and gold indices."""
    from plainsight.adapt import _train_requests
    from plainsight.tasks import LoadRequest, get_task

    out: dict[str, tuple[list, list]] = {}
    for task_id in tasks:
        task = get_task(task_id)
        requests, golds = [], []
        for root in roots:
            items = task.load_items(LoadRequest(data_root=Path(root), limit=limit))
            r, g, _ = _train_requests(vlm, entry, task, items)
            requests += r
            golds += g
        out[task_id] = (requests, golds)
    return out


def train_pocket_vlm(encoder_dir: Path, train_roots: list[Path], out_dir: Path, recipe: VLMRecipe | None = None,
                     *, log_every: int = 50, limit: int | None = None) -> dict:  # fmt: skip
    """Build, train (projector + LLM; tower frozen) and save the pocket VLM; returns a record with timings."""
    from plainsight.adapt import _letter_loss
    from plainsight.models.loading import load_vlm

    recipe = recipe or VLMRecipe()
    out_dir = Path(out_dir)
    started = time.perf_counter()
    build_pocket_vlm(encoder_dir, out_dir, recipe)
    entry = _entry(out_dir, recipe.image_mode)
    vlm = load_vlm(replace(entry), device="cpu", dtype="float32")
    wanted = tuple(dict.fromkeys(recipe.tasks + (recipe.align_tasks if recipe.align_steps else ())))
    data = train_requests(vlm, entry, train_roots, wanted, limit=limit)
    prepared = time.perf_counter() - started
    model = vlm.model
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(recipe.seed)
    orders: dict[str, list[int]] = {t: [] for t in data}
    log: list[dict] = []
    t0 = time.perf_counter()
    model.train()
    model.model.vision_tower.eval()
    names = [t for t in recipe.tasks if data[t][0]]  # a task named twice is drawn twice as often
    align = [t for t in recipe.align_tasks if t in data and data[t][0]]
    total = recipe.steps + (recipe.align_steps if align else 0)
    for step in range(total):
        aligning = bool(align) and step < recipe.align_steps
        pool = align if aligning else names
        task_id = pool[step % len(pool)]
        requests, golds = data[task_id]
        order = orders[task_id]
        while len(order) < recipe.batch_size:
            order.extend(torch.randperm(len(requests), generator=generator).tolist())
        batch, orders[task_id] = order[: recipe.batch_size], order[recipe.batch_size :]
        loss = _letter_loss(vlm, [requests[i] for i in batch], [golds[i] for i in batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        lr = recipe.lr * min(1.0, (step + 1) / max(1, recipe.warmup))
        if align and not aligning and recipe.instruct_lr is not None:
            lr = recipe.instruct_lr
        for group in optimiser.param_groups:
            group["lr"] = lr
        optimiser.step()
        log.append({"task": task_id, "loss": round(float(loss.detach()), 5), "align": aligning})
        if log_every and (step + 1) % log_every == 0:
            recent = [row["loss"] for row in log[-log_every:]]
            by_task: dict[str, list[float]] = {}
            for row in log[-log_every:]:
                by_task.setdefault(row["task"], []).append(row["loss"])
            per_task = " ".join(f"{t}={sum(v) / len(v):.3f}" for t, v in by_task.items())
            print(f"vlm step {step + 1}/{total} mean loss {sum(recent) / len(recent):.4f} ({per_task}) "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    model.eval()
    model.save_pretrained(out_dir)
    vlm.processor.save_pretrained(out_dir)
    # Folder names only: the record is written into the shipped folder, which is byte-identical per seed.
    info = {"recipe": asdict(recipe), "encoder": Path(encoder_dir).name, "train_roots": [Path(r).name for r in train_roots],
            "train_items": {t: len(data[t][0]) for t in data},
            "gold_balance": {t: [data[t][1].count(i) for i in range(len(data[t][0][0].letters))] for t in data if data[t][0]},
            "trainable_parameters": sum(p.numel() for p in params)}  # fmt: skip
    (out_dir / "pocket_vlm.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return {**info, "prepare_seconds": round(prepared, 1), "train_seconds": round(seconds, 1), "loss": log}
