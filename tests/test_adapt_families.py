"""Tuning and the attention diagnostic on every supported VLM family (tiny random models).

The prefix is exact (its vectors act like the tokens they equal), the three components are
found and disjoint, and the attention hooks return one share in [0, 1] per LLM layer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from families import FAMILIES

from plainsight.models.components import attention_modules, component_linear_names
from plainsight.models.prefix import PromptPrefix
from plainsight.models.vlms import VLMRequest
from plainsight.tasks import LoadRequest, get_task
from plainsight.views import vlm_preprocess_spec, vlm_view


@pytest.fixture(scope="module")
def items(embedded_data: Path):
    task = get_task("low_level_matching")
    return task, task.load_items(LoadRequest(embedded_data, limit=2))


def _requests(vlm, task, items) -> list[VLMRequest]:
    spec = vlm_preprocess_spec(vlm)
    return [VLMRequest(vlm_view(task.render, it, "side_by_side", spec)[0], it.prompt, it.choices) for it in items]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tuning_and_diagnostic_work_on_every_family(family: str, items):
    task, its = items
    vlm = FAMILIES[family]()
    requests = _requests(vlm, task, its)

    names = {c: set(component_linear_names(vlm.model, c)) for c in ("llm", "projector", "vision")}
    assert all(names.values()), {c: len(n) for c, n in names.items()}
    assert not (
        names["llm"] & names["projector"] or names["llm"] & names["vision"] or names["projector"] & names["vision"]
    )

    tok = vlm.tokenizer
    token = tok.eos_token_id if tok.eos_token_id is not None else tok.pad_token_id
    slot = tok.pad_token_id if tok.pad_token_id not in (None, token) else 0
    table = vlm.model.get_input_embeddings().weight
    prefix = PromptPrefix(table[[token, token]].detach().float(), slot_token_id=slot)
    with torch.inference_mode():
        vlm.prefix = prefix.attach(vlm.model)
        try:
            with_prefix = vlm.answer_logits(requests)
        finally:
            prefix.detach_hook()
            vlm.prefix = None
        inputs = vlm._inputs(requests, vlm.letter_tokens(its[0].choices).forced)
        written = PromptPrefix(torch.zeros(2, 1), slot_token_id=token).insert(inputs)
        by_hand = vlm.model(**written).logits[:, -1, :]
    torch.testing.assert_close(with_prefix, by_hand, rtol=1e-4, atol=1e-4)

    vlm.enable_attention_diagnostic()
    shares: list = []
    with torch.inference_mode():
        vlm.answer_logits(requests, attention=shares)
    layers = len(attention_modules(vlm.model))
    assert len(shares) == len(requests) and all(len(row) == layers for row in shares)
    assert all(0.0 < x <= 1.0 for row in shares for x in row), shares  # the answer position sees the image
