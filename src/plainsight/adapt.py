"""`plainsight adapt`: can the gap close? Prompt tuning and per-component LoRA through the same harness.

The paper's second half: tune 1/5/10 prefix embeddings, or fine-tune one component — vision
encoder, projector or LLM — and re-evaluate. Here a VLM entry is tuned on a **train split** of
a task's items (chosen by item id, seeded) and written to a folder that a models.toml entry
names (``base`` + ``adapter_dir``); ``pytest evals`` then evaluates original and tuned side by
side on the other items only — the runner drops every training item id from the run.

The loss is the cross-entropy of the gold letter among the item's letters, read from the
logits at the answer position — exactly the position and tokens the letter scorer reads, in
the same ONE forward per item (``HFVLM.answer_logits``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from plainsight.errors import ConfigError
from plainsight.items import Item, item_set_fingerprint
from plainsight.models.adapters import ADAPT_FILE, SCHEMA, base_signature

log = logging.getLogger("plainsight")

METHODS = ("prompt", "lora")
# Prompt tuning moves a handful of input vectors and wants a larger step than LoRA's low-rank updates.
DEFAULT_LR = {"prompt": 3e-2, "lora": 1e-3}


@dataclass(frozen=True)
class AdaptPlan:
    """What to tune and for how long (recorded in the adapter folder and in results.json)."""

    method: str  # prompt | lora
    component: str  # llm | projector | vision (lora); "prefix" for prompt tuning
    steps: int = 200
    tokens: int | None = None  # prompt tuning: prefix embeddings
    rank: int | None = None  # lora
    lr: float | None = None  # default: DEFAULT_LR of the method
    batch_size: int = 8
    train_items: int | None = None  # how many items to train on (default: train_fraction of the task)
    train_fraction: float = 0.375
    seed: int = 0

    def __post_init__(self) -> None:
        from plainsight.models.components import COMPONENTS

        if self.method not in METHODS:
            raise ConfigError(f"--method {self.method!r}: expected one of {METHODS}")
        if self.method == "lora" and self.component not in COMPONENTS:
            raise ConfigError(f"--component {self.component!r}: expected one of {COMPONENTS}")
        if self.method == "prompt" and (self.tokens is None or self.tokens < 1):
            raise ConfigError("--method prompt needs --tokens N (N >= 1; the paper tunes 1, 5 or 10)")
        if self.method == "lora" and (self.rank is None or self.rank < 1):
            raise ConfigError("--method lora needs --rank R (R >= 1)")
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.method])
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("--steps, --batch-size and --lr must be positive")
        if not 0 < self.train_fraction < 1:
            raise ConfigError("--train-fraction must be in (0, 1)")


def split_items(items: list[Item], n_train: int, seed: int) -> tuple[list[Item], list[Item]]:
    """(train, held out): the ``n_train`` items whose seeded hash of the id is smallest, and the rest.

    Depends only on the ids and the seed, so a split is the same on every machine and in every order.
    """
    if not 0 < n_train < len(items):
        raise ConfigError(f"cannot train on {n_train} of {len(items)} items: leave at least one out")
    rank = sorted(items, key=lambda it: hashlib.sha256(f"{seed}:{it.id}".encode()).hexdigest())
    chosen = {it.id for it in rank[:n_train]}
    return [it for it in items if it.id in chosen], [it for it in items if it.id not in chosen]


# -- training -------------------------------------------------------------------------------
@dataclass
class TrainingLog:
    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _letter_loss(vlm: Any, requests: list[Any], golds: list[int]) -> Any:
    import torch

    letters = requests[0].letters
    tokens = vlm.letter_tokens(letters)
    ids = torch.tensor([tokens.ids[letter] for letter in letters])
    logits = vlm.answer_logits(requests)[:, ids.to(vlm.device)].float()
    target = torch.tensor(golds, device=logits.device)
    return torch.nn.functional.cross_entropy(logits, target)


def train(vlm: Any, requests: list[Any], golds: list[int], parameters: list[Any], plan: AdaptPlan) -> TrainingLog:
    """``plan.steps`` AdamW steps on seeded mini-batches (epoch-wise permutations) of the train requests."""
    import torch

    optimiser = torch.optim.AdamW(parameters, lr=plan.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(plan.seed)
    order: list[int] = []
    record = TrainingLog()
    started = time.perf_counter()
    for step in range(plan.steps):
        if len(order) < plan.batch_size:
            order.extend(torch.randperm(len(requests), generator=generator).tolist())
        batch, order = order[: plan.batch_size], order[plan.batch_size :]
        loss = _letter_loss(vlm, [requests[i] for i in batch], [golds[i] for i in batch])
        if not loss.requires_grad:
            raise ConfigError(
                f"{vlm.name}: the {plan.component} parameters being tuned do not reach the answer logits "
                "(e.g. the VLM reads its vision tower before the layers LoRA was put on); nothing to train"
            )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {step}; try a lower --lr")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        record.loss.append(round(float(loss.item()), 5))
        if (step + 1) % max(1, plan.steps // 10) == 0:
            log.info("adapt: step %d/%d, loss %.4f", step + 1, plan.steps, loss.item())
    record.seconds = time.perf_counter() - started
    return record


def _accuracy(vlm: Any, requests: list[Any], golds: list[int]) -> float:
    from plainsight.scoring import choose

    correct = 0
    for request, gold, scores in zip(requests, golds, vlm.score_letters(requests)):
        correct += choose(scores.logprobs, request.letters).letter == request.letters[gold]
    return round(correct / len(requests), 6)


def _train_requests(vlm: Any, entry: Any, task: Any, items: list[Item]) -> tuple[list[Any], list[int], int]:
    """The requests exactly as the evals show them, gold indices, and how many items were invalid."""
    from plainsight.models.vlms import VLMRequest
    from plainsight.views import vlm_preprocess_spec, vlm_view

    spec = vlm_preprocess_spec(vlm)
    requests, golds, invalid = [], [], 0
    for item in items:
        shown, reason = vlm_view(task.render, item, entry.image_mode, spec, image_resize=entry.image_resize)
        if reason:
            invalid += 1
            continue
        requests.append(VLMRequest(images=shown, prompt=item.prompt, letters=item.choices))
        golds.append(item.choices.index(item.gold))
    if not requests:
        raise ConfigError(f"no train item of {task.id} is valid for {entry.name}")
    if len({r.letters for r in requests}) != 1:
        raise ConfigError(f"{task.id}: train items have different answer letters; train one option count at a time")
    return requests, golds, invalid


def trainable_parameters(vlm: Any, plan: AdaptPlan) -> list[Any]:
    """Wrap the VLM for the plan (LoRA on one component, or a prompt prefix) and return what trains."""
    import torch

    for param in vlm.model.parameters():
        param.requires_grad_(False)
    if plan.method == "lora":
        from peft import LoraConfig, get_peft_model

        from plainsight.models.components import component_linear_names

        targets = component_linear_names(vlm.model, plan.component)
        config = LoraConfig(r=plan.rank, lora_alpha=2 * plan.rank, lora_dropout=0.0, target_modules=targets)
        torch.manual_seed(plan.seed)
        with warnings.catch_warnings():  # peft 0.21 reads a name transformers 5 deprecates (harmless)
            warnings.filterwarnings(
                "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
            )
            vlm.model = get_peft_model(vlm.model, config)
        return [p for p in vlm.model.parameters() if p.requires_grad]
    from plainsight.models.prefix import PromptPrefix, slot_token_for

    slot = slot_token_for(vlm.tokenizer, vlm.image_token_ids())
    prefix = PromptPrefix.initialised_from_vocabulary(vlm.model, plan.tokens, slot, plan.seed)
    vlm.prefix = prefix.to(vlm.device).attach(vlm.model)
    return [vlm.prefix.embeddings]


def save(vlm: Any, plan: AdaptPlan, out: Path) -> None:
    """The adapter weights: peft's files (safetensors) for LoRA, ``prefix.safetensors`` for prompt tuning."""
    out.mkdir(parents=True, exist_ok=True)
    if plan.method == "lora":
        vlm.model.save_pretrained(str(out), safe_serialization=True)
    else:
        vlm.prefix.save(out)


def run_adapt(entry: Any, task_id: str, plan: AdaptPlan, out: Path, *, data_root: Path | None = None,
              source: str | None = None, task_options: dict[str, str] | None = None, device: str = "auto",
              dtype: str = "auto", limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Tune ``entry`` on the train split of ``task_id`` and write ``out``; returns the record written."""
    import torch

    from plainsight.models.loading import load_vlm
    from plainsight.models.vlms import HFVLM
    from plainsight.runner import resolve_device, resolve_dtype
    from plainsight.tasks import LoadRequest, get_task

    if entry.kind != "vlm" or entry.adapter_dir is not None:
        raise ConfigError(f"[models.{entry.name}]: adapt needs an original vlm entry (not an encoder or a tuned one)")
    task = get_task(task_id)
    items = task.load_items(
        LoadRequest(data_root=data_root, seed=plan.seed, limit=limit, source=source, options=task_options or {})
    )
    n_train = plan.train_items if plan.train_items is not None else max(1, int(len(items) * plan.train_fraction))
    train_items, held_out = split_items(items, n_train, plan.seed)
    device = resolve_device(device if device != "auto" else entry.device)
    dtype = resolve_dtype(dtype if dtype != "auto" else entry.dtype, device)
    # Trained as it is scored, but without the eager attention the diagnostic needs (a tuned entry turns it on).
    vlm = load_vlm(replace(entry, attention_diagnostic=False), device=device, dtype=dtype)
    if not isinstance(vlm, HFVLM):
        raise ConfigError(f"[models.{entry.name}]: only transformers VLMs can be tuned (not {type(vlm).__name__})")
    signature = base_signature(vlm.model)
    requests, golds, invalid = _train_requests(vlm, entry, task, train_items)
    log.info("adapt: %s on %s, %d train items (%d invalid), %d held out", entry.name, task_id, len(requests), invalid,
             len(held_out))  # fmt: skip
    torch.manual_seed(plan.seed)
    before = _accuracy(vlm, requests, golds)
    parameters = trainable_parameters(vlm, plan)
    training = train(vlm, requests, golds, parameters, plan)
    after = _accuracy(vlm, requests, golds)
    save(vlm, plan, out)
    from plainsight import __version__

    record = {
        "schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **asdict(plan),
        "task": task_id, "task_options": task_options or {},
        "base": {"name": entry.name, "source": entry.source, "revision": entry.revision},
        "base_signature": signature, "device": device, "dtype": dtype,
        "data": {"data_root": str(data_root) if data_root else None, "source": source,
                 "item_set": item_set_fingerprint(items), "n_items": len(items)},
        "n_train": len(requests), "invalid_train_items": invalid, "n_held_out": len(held_out),
        "train_items": sorted(it.id for it in train_items),
        "trainable_parameters": int(sum(p.numel() for p in parameters)),
        "loss": training.loss, "train_accuracy_before": before, "train_accuracy_after": after,
        "seconds": round(training.seconds, 3),
        "versions": {"plainsight": __version__, "torch": torch.__version__},
    }  # fmt: skip
    (out / ADAPT_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def models_toml_snippet(name: str, base: str, out: Path, toml_dir: Path) -> str:
    """The models.toml entry that evaluates the tuned model (adapter path relative to the toml when possible)."""
    import os

    folder = os.path.relpath(Path(out).resolve(), Path(toml_dir).resolve())
    return f'[models.{name}]\nbase = "{base}"\nadapter_dir = "{folder}"\n'
