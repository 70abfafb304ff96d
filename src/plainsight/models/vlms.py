"""VLMs answering multiple-choice items by letter log-probability.

The score of a letter is the log-probability (full-vocabulary log-softmax) of the
token the model would emit first when its answer is that letter, read at the
answer position of ONE forward per item. Which token that is comes from the
model's own chat template and tokenizer: render the conversation with and without
an assistant turn "A", and take the tokens the answer adds (Llama emits "▁A" after
"ASSISTANT:", Qwen "A" after "assistant\\n", SmolVLM "ĠA" after "Assistant:").
If every letter's answer starts with the same tokens, those are teacher-forced
and the first token that differs is scored — still one forward.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from PIL import Image

from plainsight.items import Item
from plainsight.models.adapters import apply_adaptation, read_adaptation
from plainsight.models.backends import BACKENDS, Backend
from plainsight.models.encoders import hf_preprocess_spec, torch_dtype
from plainsight.models.families import profile_for
from plainsight.models.registry import ModelEntry, missing_local_folder, not_in_hf_cache


@dataclass
class VLMRequest:
    images: list[Image.Image]  # as shown: rendered, and composed when the image mode is side_by_side
    prompt: str  # the task's multiple-choice text (the user turn)
    letters: tuple[str, ...]
    item: Item | None = None  # only test doubles may read it


@dataclass
class LetterScores:
    # log-probability of each letter's first answer token (full-vocabulary log-softmax); may hold NaN/inf
    logprobs: dict[str, float]
    token_ids: dict[str, int] = field(default_factory=dict)  # the token scored per letter (empty for doubles)
    image_attention: list[float] | None = None  # per LLM layer, the answer position's attention share on image tokens


class VLM(Protocol):
    name: str
    forward_count: int

    def score_letters(self, requests: list[VLMRequest]) -> list[LetterScores]: ...

    def generate(self, requests: list[VLMRequest], *, max_new_tokens: int = 8) -> list[str]: ...


@dataclass(frozen=True)
class LetterTokens:
    forced: tuple[int, ...]  # tokens every letter's answer starts with (teacher-forced)
    ids: dict[str, int]  # the first token that differs, per letter


def split_letter_tokens(name: str, answers: dict[str, list[int]]) -> LetterTokens:
    """From each letter's answer tokens: the prefix they all share (teacher-forced) and the first token that
    tells them apart (scored). A tokenisation that cannot tell two letters apart is an error."""
    forced: list[int] = []
    while all(len(a) > len(forced) for a in answers.values()) and len({a[len(forced)] for a in answers.values()}) == 1:
        forced.append(next(iter(answers.values()))[len(forced)])
    if any(len(a) <= len(forced) for a in answers.values()):
        raise RuntimeError(f"{name}: letters {tuple(answers)} are not told apart by their answer tokens {answers}")
    ids = {letter: a[len(forced)] for letter, a in answers.items()}
    if len(set(ids.values())) != len(ids):
        raise RuntimeError(f"{name}: two letters map to the same token: {ids}")
    return LetterTokens(tuple(forced), ids)


def letter_logprobs(logits: torch.Tensor, tokens: LetterTokens, letters: tuple[str, ...]) -> list[list[float]]:
    """(B, vocab) answer-position logits → per row, each letter's full-vocabulary log-probability.

    ``x_id − logsumexp(x)`` gathered where the logits are, so (batch × letters) numbers cross to the
    host rather than (batch × vocabulary).
    """
    logits = logits.float()
    ids = torch.tensor([tokens.ids[letter] for letter in letters], device=logits.device)
    return (logits[:, ids] - torch.logsumexp(logits, dim=-1, keepdim=True)).tolist()


class LetterScorer:
    """Letter scoring for a VLM that computes (B, vocab) logits at the answer position in one forward.

    A subclass provides ``batch_size``, ``letter_tokens(letters)`` and ``answer_logits(chunk, attention=[])``,
    which may append each row's image-attention shares to ``attention`` (the attention diagnostic).
    """

    batch_size: int

    @torch.inference_mode()
    def score_letters(self, requests: list[VLMRequest]) -> list[LetterScores]:
        """Each request's letter log-probabilities, ``batch_size`` requests per forward.

        The log-softmax is taken at the letters' ids only (``letter_logprobs``), on the logits' device,
        so (batch, letters) numbers cross to the host rather than (batch, vocabulary).
        """
        out: list[LetterScores] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            letters = chunk[0].letters
            tokens = self.letter_tokens(letters)
            attention: list = []
            logprobs = letter_logprobs(self.answer_logits(chunk, attention=attention), tokens, letters)
            for values, shares in zip(logprobs, attention or [None] * len(chunk)):
                out.append(LetterScores(dict(zip(letters, values)), dict(tokens.ids), shares))
        return out


class HFVLM(LetterScorer):
    """Any transformers ``AutoModelForImageTextToText`` checkpoint with an ``AutoProcessor`` and chat template."""

    def __init__(self, name: str, model: Any, processor: Any, *, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, batch_size: int = 8):  # fmt: skip
        self.name = name
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.forward_count = 0
        self.profile = profile_for(getattr(model.config, "model_type", ""))
        self._letter_cache: dict[tuple[str, ...], LetterTokens] = {}
        self._accepts_logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self.prefix: Any = None  # a PromptPrefix (prompt tuning), inserted before every prompt
        self.attention_probe: Any = None  # an ImageAttentionProbe (the attention diagnostic)

    def image_token_ids(self) -> set[int]:
        """The placeholder token ids the model fills with image features."""
        config = self.model.config
        ids = {getattr(config, key, None) for key in ("image_token_id", "image_token_index")}
        return {int(i) for i in ids if i is not None}

    def enable_attention_diagnostic(self) -> None:
        """Eager attention (weights are returned) and hooks that keep the answer position's row."""
        from plainsight.attention import ImageAttentionProbe
        from plainsight.models.components import attention_modules

        self.model.set_attn_implementation("eager")
        self.attention_probe = ImageAttentionProbe(attention_modules(self.model), self.image_token_ids())

    @classmethod
    def from_pretrained(cls, name: str, path_or_id: str, *, revision: str | None = None, device: str = "cpu",
                        dtype: torch.dtype = torch.float32, trust_remote_code: bool = False,
                        local_files_only: bool = True, batch_size: int = 8) -> "HFVLM":  # fmt: skip
        from transformers import AutoModelForImageTextToText, AutoProcessor

        kwargs = dict(revision=revision, trust_remote_code=trust_remote_code, local_files_only=local_files_only)
        processor = AutoProcessor.from_pretrained(path_or_id, **kwargs)
        model = AutoModelForImageTextToText.from_pretrained(path_or_id, dtype=dtype, **kwargs)
        adapter = vlm_class(model.config.model_type) if cls is HFVLM else cls
        return adapter(name, model, processor, device=device, dtype=dtype, batch_size=batch_size)

    # -- prompts -------------------------------------------------------------
    @staticmethod
    def _user_turn(n_images: int, text: str) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
        content.append({"type": "text", "text": text})
        return [{"role": "user", "content": content}]

    def build_prompt(self, n_images: int, text: str) -> str:
        """The chat-template text of the user turn (images first, then the text) and the assistant prefix."""
        return self.processor.apply_chat_template(
            self._user_turn(n_images, text), add_generation_prompt=True, tokenize=False
        )

    def _answer_tokens(self, letter: str) -> list[int]:
        messages = self._user_turn(1, "Question?")
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        answered = messages + [{"role": "assistant", "content": [{"type": "text", "text": letter}]}]
        full = self.processor.apply_chat_template(answered, add_generation_prompt=False, tokenize=False)
        if not full.startswith(prompt):
            raise RuntimeError(
                f"{self.name}: the chat template's generation prompt is not a prefix of an answered conversation "
                f"({prompt[-40:]!r} vs {full[len(prompt) - 40 : len(prompt) + 20]!r}); letter scoring needs it"
            )
        prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        full_ids = self.tokenizer(full, add_special_tokens=False)["input_ids"]
        if full_ids[: len(prompt_ids)] != prompt_ids:
            raise RuntimeError(
                f"{self.name}: tokenizing the answer changes the prompt's tokens; cannot locate the answer"
            )
        answer = full_ids[len(prompt_ids) :]
        if not answer:
            raise RuntimeError(f"{self.name}: the answer {letter!r} adds no tokens")
        return answer

    def letter_tokens(self, letters: tuple[str, ...]) -> LetterTokens:
        """The teacher-forced common prefix and the scored token per letter (cached)."""
        if letters not in self._letter_cache:
            answers = {letter: self._answer_tokens(letter) for letter in letters}
            self._letter_cache[letters] = split_letter_tokens(self.name, answers)
        return self._letter_cache[letters]

    def letter_token_ids(self, letters: tuple[str, ...]) -> dict[str, list[int]]:
        """Per letter, the answer tokens up to the scored one: the teacher-forced prefix, then the scored id."""
        tokens = self.letter_tokens(tuple(letters))
        return {letter: [*tokens.forced, token] for letter, token in tokens.ids.items()}

    # -- scoring -------------------------------------------------------------
    def _images_arg(self, requests: list[VLMRequest]) -> list[Any]:
        if self.profile.nested_images:
            return [list(r.images) for r in requests]
        return [im for r in requests for im in r.images]

    def _inputs(self, requests: list[VLMRequest], forced: tuple[int, ...]) -> dict[str, torch.Tensor]:
        texts = [self.build_prompt(len(r.images), r.prompt) for r in requests]
        previous = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"  # the answer position is the last one in every row
        try:
            batch = self.processor(images=self._images_arg(requests), text=texts, padding=True, return_tensors="pt")
        finally:
            self.tokenizer.padding_side = previous
        inputs = {k: v for k, v in batch.items() if k != "labels"}  # PaliGemma's processor adds labels
        if self.prefix is not None:
            inputs = self.prefix.insert(inputs)
        if forced:
            extra = torch.tensor([list(forced)] * len(requests), dtype=inputs["input_ids"].dtype)
            inputs["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
            inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(extra)], dim=1)
            for key in ("mm_token_type_ids", "token_type_ids"):
                if key in inputs:
                    inputs[key] = torch.cat([inputs[key], torch.zeros_like(extra)], dim=1)
        return {
            k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
            for k, v in inputs.items()
            if isinstance(v, torch.Tensor)
        }

    def answer_logits(self, requests: list[VLMRequest], *, attention: list | None = None) -> torch.Tensor:
        """(B, vocab) logits at the answer position for one batch sharing its letters — ONE forward.

        Runs with gradients when called outside ``inference_mode`` (``plainsight adapt`` trains on it).
        With the attention diagnostic on, ``attention`` receives each row's per-layer image share.
        """
        letters = requests[0].letters
        if any(r.letters != letters for r in requests):
            raise ValueError("a batch must share its answer letters")
        inputs = self._inputs(requests, self.letter_tokens(letters).forced)
        kwargs = {"logits_to_keep": 1} if self._accepts_logits_to_keep else {}
        self.forward_count += len(requests)
        try:
            if attention is None or self.attention_probe is None:
                return self.model(**inputs, **kwargs).logits[:, -1, :]
            with self.attention_probe.capture(inputs["input_ids"]) as shares:
                logits = self.model(**inputs, **kwargs).logits[:, -1, :]
            attention.extend(shares)
            return logits
        finally:
            self._forget_slots()

    def _forget_slots(self) -> None:
        """The prefix slots belong to the batch just run; no later embedding call may match them."""
        if self.prefix is not None:
            self.prefix.slots = None

    @torch.inference_mode()
    def generate(
        self, requests: list[VLMRequest], *, max_new_tokens: int = 8, restrict_to_letters: bool = False
    ) -> list[str]:
        """Greedy replies (decoded, special tokens kept so the parser sees what the model emitted).

        ``restrict_to_letters`` masks every token but the letters' answer tokens (and their
        teacher-forced prefix): the generated letter is then the letter-scoring argmax.
        """
        replies: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            kwargs, forced = greedy_settings(self, chunk[0].letters, max_new_tokens, restrict_to_letters)
            inputs = self._inputs(chunk, forced)
            pad = (
                self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            )
            try:
                out = self.model.generate(**inputs, pad_token_id=pad, **kwargs)
            finally:
                self._forget_slots()
            self.forward_count += len(chunk)
            new_tokens = out[:, inputs["input_ids"].shape[1] :]
            replies.extend(self.tokenizer.batch_decode(new_tokens, skip_special_tokens=False))
        return replies


class PaliGemmaVLM(HFVLM):
    """PaliGemma has no chat template: its processor prefixes the image tokens and BOS and ends
    the prompt with a newline, after which the answer starts."""

    def build_prompt(self, n_images: int, text: str) -> str:
        return self.processor.image_token * n_images + text

    def _answer_tokens(self, letter: str) -> list[int]:
        prompt = self.tokenizer("Question?\n", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("Question?\n" + letter, add_special_tokens=False)["input_ids"]
        if full[: len(prompt)] != prompt or len(full) == len(prompt):
            raise RuntimeError(f"{self.name}: cannot locate the answer token of {letter!r} after the prompt")
        return full[len(prompt) :]


def vlm_class(model_type: str) -> type[HFVLM]:
    """The HFVLM class that writes the prompts of a family (its profile's ``prompt_format``)."""
    return PaliGemmaVLM if profile_for(model_type).prompt_format == "paligemma" else HFVLM


def greedy_settings(vlm: Any, letters: tuple[str, ...], max_new_tokens: int,
                    restrict_to_letters: bool) -> tuple[dict[str, Any], tuple[int, ...]]:  # fmt: skip
    """``generate`` kwargs for a greedy reply, and the tokens to teacher-force; restricted to the letters, one
    token among the letters' answer tokens (the letter-scoring argmax)."""
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    if not restrict_to_letters:
        return kwargs, ()
    tokens = vlm.letter_tokens(letters)
    kwargs.update(logits_processor=[_AllowOnly(sorted(tokens.ids.values()))], max_new_tokens=1)
    return kwargs, tokens.forced


class _AllowOnly:
    """A logits processor that leaves only the given token ids possible."""

    def __init__(self, allowed: list[int]):
        self.allowed = torch.tensor(allowed)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = torch.full_like(scores, float("-inf"))
        mask[:, self.allowed.to(scores.device)] = 0
        return scores + mask


def load_hf_vlm(entry: ModelEntry, *, device: str = "cpu", dtype: str | torch.dtype = "float32") -> HFVLM:
    """A transformers VLM from a local folder or an HF id in the local cache, with the entry's adapter folder
    applied (a tuned entry) and the attention diagnostic on where the entry asks for it."""
    missing = missing_local_folder(entry)
    if missing is not None:
        raise missing
    adapter_dir = entry.resolved_adapter_dir()
    if adapter_dir is not None:
        read_adaptation(adapter_dir)  # a missing adapter is reported before the base is loaded
    try:
        vlm = HFVLM.from_pretrained(
            entry.name, entry.resolved_source(), revision=entry.revision, device=device, dtype=torch_dtype(dtype),
            trust_remote_code=entry.trust_remote_code, batch_size=entry.batch_size,
        )  # fmt: skip
    except OSError as exc:
        if entry.is_local_path:
            raise
        raise not_in_hf_cache(entry, exc) from None
    if adapter_dir is not None:
        apply_adaptation(vlm, adapter_dir)
    if entry.attention_diagnostic:
        vlm.enable_attention_diagnostic()
    return vlm


BACKENDS.register("vlm:hf", Backend(load=load_hf_vlm, preprocess_spec=hf_preprocess_spec))
