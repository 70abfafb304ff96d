"""Running a model in a role on a task's items, once per worker.

A :class:`Runner` is the per-worker session store: items are
built once per task, each model is loaded once and released before the next one
loads, and each (task, model, role, item set) is computed once and memoised, so a
VLM test and a vision test in the same worker share work.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from itertools import islice
from typing import Any, Callable, Iterator

from PIL import Image

from plainsight.attention import mean_per_layer
from plainsight.errors import DataError, PlainsightError
from plainsight.items import Item, ItemImage, canonical_hash, item_set_fingerprint, out_of_image
from plainsight.models.registry import ModelEntry, load_failure
from plainsight.outcomes import (
    DATA_ERROR,
    INVALID,
    OWN_TOWER_SUFFIX,
    ROLE_BLIND,
    ROLE_VISION,
    ROLE_VLM,
    Outcome,
    OutcomeSink,
    RoleRun,
    outcome_from_json,
)
from plainsight.run_options import RunOptions
from plainsight.scoring import choose, parse_choice
from plainsight.shards import shard_items
from plainsight.tasks import LoadRequest, get_task
from plainsight.views import vlm_preprocess_spec, vlm_view

log = logging.getLogger("plainsight")

DECODE_CACHE_SIZE = 64  # decoded source images kept per runner (bounded: real datasets have large images)


def resolve_device(requested: str, worker: str = "main") -> str:
    """auto → cuda when available; under xdist with several GPUs, worker gwN gets cuda:(N mod count)."""
    import torch

    if requested in ("", "auto"):
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and worker.startswith("gw") and torch.cuda.device_count() > 1:
        return f"cuda:{int(worker[2:]) % torch.cuda.device_count()}"
    return requested


def resolve_dtype(requested: str, device: str) -> str:
    if requested in ("", "auto"):
        return "bfloat16" if device.startswith("cuda") else "float32"
    return requested


class Runner:
    """Per-worker store of items, loaded models and memoised role runs."""

    def __init__(
        self,
        options: RunOptions,
        entries: dict[str, ModelEntry],
        sink: OutcomeSink | None = None,
        worker: str = "main",
        answers: dict[str, dict[str, Any]] | None = None,
        training_items: dict[str, dict[str, frozenset[str]]] | None = None,
    ):
        self.options = options
        self.worker = worker
        self.entries = entries
        self.sink = sink
        self.answers = answers or {}  # answer key → items.jsonl line of an earlier run (--resume)
        self.reused = 0  # outcomes taken from `answers` instead of being computed
        # task → {tuned model → ids it was trained on}: dropped from the task for the whole run (held-out eval)
        self.training_items = training_items or {}
        self.computed = 0
        self._items: dict[str, list[Item]] = {}
        self._item_sets: dict[str, str] = {}  # task → fingerprint of its whole item list (all shards)
        self._shard_sets: dict[str, str] = {}  # task → fingerprint of this runner's items (the memo key)
        self.skipped: dict[str, dict[str, int]] = {}  # task → {reason: source rows its loader left out}
        self._runs: dict[tuple[str, str, str, str], RoleRun] = {}
        self._loaded_name: str | None = None
        self._loaded: Any = None
        self.loads: list[str] = []  # model names in load order (tests check one load per model)
        self.placement: dict[str, str] = {}  # device and dtype of the loaded model
        self._decode_cache: OrderedDict[tuple, Image.Image] = OrderedDict()
        # Per source image: decoded once without error (not bounded: keys only), or the DataError's message.
        # A failure is remembered so every role and item sharing the image reports the same fault.
        self._images_ok: set[tuple] = set()
        self._image_faults: dict[tuple, str] = {}

    # -- items ---------------------------------------------------------------
    def items(self, task_id: str) -> list[Item]:
        if task_id not in self._items:
            from plainsight.protocols import get_protocol

            task = get_task(task_id)
            req = LoadRequest(
                data_root=self.options.data_root,
                seed=self.options.seed,
                limit=self.options.limit,
                source=self.options.source,
                options=self.options.task_options.get(task_id, {}),
                prefer=get_protocol(self.options.protocol).sources.get(task_id, ()),
            )
            items = task.load_items(req)
            self.skipped[task_id] = dict(sorted(req.skipped.items()))
            trained_on = self.training_items.get(task_id, {})
            if trained_on:
                excluded = frozenset().union(*trained_on.values())
                kept = [it for it in items if it.id not in excluded]
                log.info("%s: %d items left out of the run (training items of %s); %d held out remain", task_id,
                         len(items) - len(kept), ", ".join(sorted(trained_on)), len(kept))  # fmt: skip
                items = kept
            self._item_sets[task_id] = item_set_fingerprint(items)
            self._items[task_id] = shard_items(items, self.options.shard)
            sharded = self.options.shard is not None
            self._shard_sets[task_id] = (
                item_set_fingerprint(self._items[task_id]) if sharded else self._item_sets[task_id]
            )
        return self._items[task_id]

    def data_source(self, task_id: str) -> str | None:
        """The format the task's items were read from (``blink``, ``spair``, …), as the loader stamped it."""
        sources = sorted({str(it.meta.get("source")) for it in self.items(task_id) if it.meta.get("source")})
        return "+".join(sources) or None

    # -- answers of an earlier run (--resume) ----------------------------------
    def answer_key(self, task_id: str, model_name: str, role: str, item: Item) -> str:
        """What an outcome depends on: the item (prompt included), the model entry, its placement and scoring."""
        entry = self.entries.get(model_name.removesuffix(OWN_TOWER_SUFFIX))
        device = self.device_for(entry) if entry is not None else ""
        return canonical_hash({
            "task": task_id, "model": model_name, "role": role, "item": item.fingerprint(),
            "entry": entry.fingerprint_fields() if entry is not None else None, "device": device,
            "dtype": self.dtype_for(entry, device) if entry is not None else "", "scoring": self.options.scoring,
            "probe_recipe": self.options.probe_recipe,
        }, length=24)  # fmt: skip

    def _answer_keys(self, task_id: str, model_name: str, role: str, items: list[Item]) -> dict[str, str | None]:
        """Item id → answer key, once per role run (the sink writes it beside each outcome; None without a sink)."""
        if self.sink is None and not self.answers:
            return dict.fromkeys((item.id for item in items), None)
        return {item.id: self.answer_key(task_id, model_name, role, item) for item in items}

    def _stored_answers(self, keys: dict[str, str | None], items: list[Item]) -> list[Outcome | None]:
        """Per item, the outcome an earlier run stored under the same answer key (None where there is none)."""
        found: list[Outcome | None] = []
        for item in items:
            row = self.answers.get(keys[item.id]) if self.answers else None
            # A data fault is not an answer: the file may have been fixed since, so the item is tried again.
            stored = None if row is None or row.get("reason") == DATA_ERROR else outcome_from_json(row)
            found.append(stored)
        return found

    # -- models --------------------------------------------------------------
    def device_for(self, entry: ModelEntry) -> str:
        requested = self.options.device if self.options.device != "auto" else entry.device
        return resolve_device(requested, self.worker)

    def dtype_for(self, entry: ModelEntry, device: str) -> str:
        requested = self.options.dtype if self.options.dtype != "auto" else entry.dtype
        return resolve_dtype(requested, device)

    def model(self, name: str) -> Any:
        """The loaded model for an entry; the previously loaded one is released first."""
        if self._loaded_name == name:
            return self._loaded
        self.release()
        entry = self.entries[name]
        device = self.device_for(entry)
        dtype = self.dtype_for(entry, device)
        started = time.perf_counter()
        try:
            from plainsight.models.loading import load_model

            model = load_model(entry, device=device, dtype=dtype)
        except PlainsightError:
            raise
        except Exception as exc:  # a present model that breaks while loading: one line naming the file and cause
            raise load_failure(entry, exc) from exc
        log.info("loaded %s (%s, %s) in %.1fs", name, device, dtype, time.perf_counter() - started)
        self._loaded_name, self._loaded = name, model
        self.placement = {"device": device, "dtype": dtype}
        self.loads.append(name)
        return model

    def encoder(self, name: str) -> Any:
        """An encoder entry, or ``<vlm>/own_tower``: the vision tower lent by the loaded VLM."""
        if name.endswith(OWN_TOWER_SUFFIX):
            from plainsight.models.own_tower import OwnTowerEncoder

            vlm_name = name.removesuffix(OWN_TOWER_SUFFIX)
            return OwnTowerEncoder(self.model(vlm_name), name, image_resize=self.entries[vlm_name].image_resize)
        return self.model(name)

    def release(self) -> None:
        """Drop the loaded model and return its memory (CPU RSS via gc; CUDA cache)."""
        if self._loaded is None:
            return
        self._loaded_name, self._loaded = None, None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass

    # -- role runs -----------------------------------------------------------
    def forget_runs(self) -> None:
        """Drop memoised role runs and decoded images; the loaded model stays (benchmarks re-score with it)."""
        self._runs.clear()
        self._decode_cache.clear()
        self._images_ok.clear()
        self._image_faults.clear()

    def run(self, task_id: str, model_name: str, role: str) -> RoleRun:
        items = self.items(task_id)
        key = (task_id, model_name, role, self._shard_sets[task_id])
        if key not in self._runs:
            started = time.perf_counter()
            if role == ROLE_VISION:
                run = self._run_vision(task_id, model_name, items)
            elif role in (ROLE_VLM, ROLE_BLIND):
                run = self._run_vlm(task_id, model_name, items, blind=role == ROLE_BLIND)
            else:
                raise ValueError(f"unknown role {role!r}")
            run.item_set = self._item_sets.get(task_id, key[3])
            run.info["data_source"] = self.data_source(task_id)
            run.info["data_skipped"] = self.skipped.get(task_id, {})
            run.seconds = time.perf_counter() - started
            self._runs[key] = run
        return self._runs[key]

    def _decoded(self, image: "ItemImage") -> Image.Image:
        """A source image decoded once per run (items share images: HPatches reuses image 1 across pairs).

        A missing or undecodable file raises DataError (naming it) every time it is asked for, without
        trying again: only successes are cached.
        """
        key = _image_key(image)
        if key in self._image_faults:
            raise DataError(self._image_faults[key])
        if key in self._decode_cache:
            self._decode_cache.move_to_end(key)
        else:
            try:
                decoded = image.load()
            except DataError as exc:
                self._image_faults[key] = str(exc)
                raise
            self._images_ok.add(key)
            self._decode_cache[key] = decoded
            if len(self._decode_cache) > DECODE_CACHE_SIZE:
                self._decode_cache.popitem(last=False)
        return self._decode_cache[key]

    def data_fault(self, item: Item) -> str | None:
        """Why an item's data cannot be used (its file and what is wrong), or None; the same in every role.

        Geometry outside an image (:func:`plainsight.items.out_of_image`) is found first, then every image
        is decoded once per runner — also for the blind role, which shows white images, so all roles of a
        task count the same items as data faults whichever runs first.
        """
        fault = out_of_image(item)
        if fault is not None:
            return fault
        for image in item.images:
            if _image_key(image) in self._images_ok:
                continue
            try:
                self._decoded(image)
            except DataError as exc:
                return str(exc)
        return None

    def _data_error(self, run: RoleRun, item: Item, detail: str, key: str | None) -> None:
        log.warning("%s × %s (%s): item %s not scored, data error: %s", run.task, run.model, run.role, item.id, detail)
        self._emit(run, Outcome(item.id, item.gold, None, DATA_ERROR, None, detail), key)

    def _emit(self, run: RoleRun, outcome: Outcome, key: str | None = None, *, reused: bool = False) -> None:
        run.outcomes.append(outcome)
        if reused:
            self.reused += 1
        else:
            self.computed += 1
        if self.sink is not None:
            self.sink(run.task, run.model, run.role, outcome, key)

    def _progress(self, run: RoleRun, done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done % step == 0:
            log.info("%s × %s (%s): %d/%d items", run.task, run.model, run.role, done, total)

    def _run_vision(self, task_id: str, model_name: str, items: list[Item]) -> RoleRun:
        from plainsight.readouts import READOUTS

        task = get_task(task_id)
        # The model is loaded (and a probe prepared) even when every answer is stored: the record
        # reports its placement and preprocessing; only the items are not computed again.
        answer_keys = self._answer_keys(task_id, model_name, ROLE_VISION, items)
        stored = self._stored_answers(answer_keys, items)
        encoder = self.encoder(model_name)
        readout = READOUTS.get(task.readout)
        run = RoleRun(task_id, model_name, ROLE_VISION, "", [], info={"readout": task.readout, **self.placement})
        run.info["preprocess"] = getattr(getattr(encoder, "spec", None), "source", "") or None
        prepared: dict[str, Any] = {}
        if readout.prepare is not None:
            prepared = readout.prepare(self, model_name, encoder)
            run.info.update(prepared.pop("info", {}))
        cache: dict[tuple, Any] = {}  # image key → features; only images that decoded are encoded
        for done, (item, answer) in enumerate(zip(items, stored), 1):
            if answer is not None:
                self._emit(run, answer, answer_keys[item.id], reused=True)
                continue
            fault = self.data_fault(item)
            if fault is not None:  # before the encoder sees it: nothing of a bad item is encoded or cached
                self._data_error(run, item, fault, answer_keys[item.id])
                self._progress(run, done, len(items))
                continue
            try:
                features = None
                if readout.uses_features:
                    # Encode each distinct source image once per encoder (HPatches reuses image 1 across pairs).
                    keys = [_image_key(im) for im in item.images]
                    missing = [i for i, k in enumerate(keys) if k not in cache]
                    if missing:
                        images = [self._decoded(item.images[i]) for i in missing]
                        for i, feats in zip(missing, encoder.encode(images)):
                            cache[keys[i]] = feats
                    features = [cache[k] for k in keys]
                result = readout.answer(encoder, item, features, **prepared)
            except DataError as exc:  # the item's own record is malformed (a point or box it lacks, …)
                self._data_error(run, item, str(exc), answer_keys[item.id])
                self._progress(run, done, len(items))
                continue
            if result.scores is None:
                outcome = Outcome(item.id, item.gold, None, INVALID, None, result.invalid_reason)
            else:
                choice = choose(result.scores, item.choices)
                outcome = Outcome(item.id, item.gold, choice.letter, choice.reason, dict(result.scores))
            self._emit(run, outcome, answer_keys[item.id])
            self._progress(run, done, len(items))
        return run

    def _run_vlm(self, task_id: str, model_name: str, items: list[Item], *, blind: bool) -> RoleRun:
        from plainsight.models.vlms import VLMRequest

        task = get_task(task_id)
        entry = self.entries[model_name]
        vlm = self.model(model_name)
        role = ROLE_BLIND if blind else ROLE_VLM
        scoring = self.options.scoring or entry.scoring
        run = RoleRun(
            task_id, model_name, role, "", [],
            info={"image_mode": entry.image_mode, "image_resize": entry.image_resize, "scoring": scoring, **self.placement},
        )  # fmt: skip
        spec = vlm_preprocess_spec(vlm)
        run.info["preprocess"] = spec.source if spec else None
        batch_size = max(1, entry.batch_size)
        pending: list[tuple[Item, Any]] = []
        answer_keys = self._answer_keys(task_id, model_name, role, items)
        stored = self._stored_answers(answer_keys, items)

        def flush() -> None:
            requests = [req for _, req in pending]
            if scoring == "generate":
                for (item, _), reply in zip(pending, vlm.generate(requests, max_new_tokens=entry.max_new_tokens)):
                    letter = parse_choice(reply, item.choices, item.option_texts or None)
                    reason = None if letter is not None else "parse_failure"
                    self._emit(run, Outcome(item.id, item.gold, letter, reason, None, reply), answer_keys[item.id])
            else:
                for (item, _), scores in zip(pending, vlm.score_letters(requests)):
                    choice = choose(scores.logprobs, item.choices)
                    outcome = Outcome(
                        item.id,
                        item.gold,
                        choice.letter,
                        choice.reason,
                        dict(scores.logprobs),
                        attention=scores.image_attention,
                    )
                    self._emit(run, outcome, answer_keys[item.id])
            pending.clear()

        def view(item: Item) -> tuple[list[Image.Image], str | None, str | None]:
            """(shown images, why the model cannot use them, the item's data fault)."""
            fault = self.data_fault(item)  # blind too: white images, but the same items are data faults
            if fault is not None:
                return [], None, fault
            try:
                images = None if blind else [self._decoded(im) for im in item.images]
                shown, invalid = vlm_view(task.render, item, entry.image_mode, spec, blind=blind, images=images,
                                          image_resize=entry.image_resize)  # fmt: skip
            except DataError as exc:
                return [], None, str(exc)
            return shown, invalid, None

        # On a GPU, views (decode, markers, composition) are prepared a batch ahead in a second
        # thread, so CPU work overlaps the forward (the GIL is free while kernels run). On the CPU
        # the two would compete for the same cores and the GIL: they run in turn.
        todo = [item for item, answer in zip(items, stored) if answer is None]
        on_gpu = self.placement.get("device", "cpu").startswith("cuda")
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plainsight-views") if on_gpu else None
        with pool or nullcontext():
            views = _prefetched(pool, view, todo, ahead=batch_size)
            for done, (item, answer) in enumerate(zip(items, stored), 1):
                if answer is not None:
                    self._emit(run, answer, answer_keys[item.id], reused=True)
                    continue
                shown, invalid, fault = next(views)
                if fault is not None:
                    self._data_error(run, item, fault, answer_keys[item.id])
                elif invalid:
                    self._emit(run, Outcome(item.id, item.gold, None, INVALID, None, invalid), answer_keys[item.id])
                else:
                    pending.append(
                        (item, VLMRequest(images=shown, prompt=item.prompt, letters=item.choices, item=item))
                    )
                    if len(pending) >= batch_size:
                        flush()
                self._progress(run, done, len(items))
            if pending:
                flush()
        # Outcomes were emitted batch by batch; keep them in item order.
        order = {it.id: i for i, it in enumerate(items)}
        run.outcomes.sort(key=lambda o: order[o.item_id])
        attention = mean_per_layer([o.attention for o in run.outcomes if o.valid])
        if attention is not None:
            run.info["image_attention"] = attention
        return run


def _image_key(image: ItemImage) -> tuple:
    """One source image (file and annotated size), for the runner's decode and feature caches."""
    return (str(image.root), image.path, tuple(image.size))


def _prefetched(
    pool: ThreadPoolExecutor | None, fn: Callable[[Item], Any], items: list[Item], *, ahead: int
) -> Iterator[Any]:
    """``fn(item)`` for each item in order, computed in ``pool`` up to ``ahead`` items before they are
    asked for (in turn, on this thread, without a pool). An exception surfaces at its item."""
    if pool is None:
        yield from (fn(item) for item in items)
        return
    queue: deque[Future] = deque()
    upcoming = iter(items)
    for item in islice(upcoming, ahead + 1):
        queue.append(pool.submit(fn, item))
    while queue:
        result = queue.popleft().result()
        nxt = next(upcoming, None)
        if nxt is not None:
            queue.append(pool.submit(fn, nxt))
        yield result
