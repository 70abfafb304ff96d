"""The attention diagnostic: the answer position's attention share on image tokens, per layer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from plainsight.attention import ImageAttentionProbe, image_attention_share, mean_per_layer
from plainsight.models.vlms import HFVLM, VLMRequest

REPO = Path(__file__).resolve().parents[1]
IMAGE = 7  # the image placeholder id of the double


class KnownAttention(torch.nn.Module):
    """An attention layer double: returns fixed weights (heads, keys) for the last query, uniform elsewhere."""

    def __init__(self, last_row: torch.Tensor):
        super().__init__()
        self.last_row = last_row  # (heads, keys)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length, _ = hidden.shape
        heads = self.last_row.shape[0]
        weights = torch.full((batch, heads, length, length), 1.0 / length)
        weights[:, :, -1, :] = self.last_row
        return hidden, weights


class DoubleModel(torch.nn.Module):
    def __init__(self, rows: list[torch.Tensor]):
        super().__init__()
        self.layers = torch.nn.ModuleList(KnownAttention(r) for r in rows)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = torch.zeros(*input_ids.shape, 4)
        for layer in self.layers:
            hidden, _ = layer(hidden)
        return hidden


def test_double_with_known_attention():
    ids = torch.tensor([[1, IMAGE, IMAGE, 2, 3]])  # keys 1 and 2 are image tokens
    uniform = torch.full((2, 5), 0.2)  # 2 of 5 keys are image tokens: 0.4
    on_text = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0.5, 0.5]])  # none on the image: 0.0
    split = torch.tensor([[0, 1.0, 0, 0, 0], [0.5, 0, 0.25, 0.25, 0]])  # head means: 1.0 and 0.25 -> 0.625
    model = DoubleModel([uniform, on_text, split])
    probe = ImageAttentionProbe(list(model.layers), {IMAGE})
    with probe.capture(ids) as shares:
        model(ids)
    assert shares == [pytest.approx([0.4, 0.0, 0.625])]
    # Outside a capture the hooks keep nothing.
    model(ids)
    probe.remove()


def test_probe_refuses_attention_without_weights():
    class NoWeights(torch.nn.Module):
        def forward(self, x):
            return x, None

    layer = NoWeights()
    probe = ImageAttentionProbe([layer], {IMAGE})
    with pytest.raises(RuntimeError, match="eager attention"):
        with probe.capture(torch.tensor([[IMAGE, 1]])):
            layer(torch.zeros(1))


@settings(max_examples=80, deadline=None)
@given(batch=st.integers(1, 3), heads=st.integers(1, 4), keys=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_share_is_a_probability_and_complements(batch, heads, keys, seed):
    generator = torch.Generator().manual_seed(seed)
    row = torch.softmax(torch.randn(batch, heads, keys, generator=generator), dim=-1)
    mask = torch.rand(batch, keys, generator=generator) > 0.5
    share = image_attention_share(row, mask)
    assert ((share >= -1e-6) & (share <= 1 + 1e-6)).all()
    torch.testing.assert_close(share + image_attention_share(row, ~mask), torch.ones(batch))
    torch.testing.assert_close(image_attention_share(row, torch.ones_like(mask)), torch.ones(batch))


def test_mean_per_layer_skips_items_without_a_value():
    assert mean_per_layer([[0.2, 0.4], None, [0.4, 0.0]]) == [0.3, 0.2]
    assert mean_per_layer([None, None]) is None


def test_real_model_probe_matches_transformers_attentions():
    """On a tiny LLaVA (eager), the hooked rows give the shares computed from ``output_attentions``."""
    from PIL import Image

    vlm = HFVLM.from_pretrained("tiny-llava", str(REPO / "fixtures" / "models" / "tiny-llava"))
    vlm.enable_attention_diagnostic()
    requests = [VLMRequest([Image.new("RGB", (48, 24), c)], f"Pick {i}", ("A", "B"))
                for i, c in enumerate([(250, 0, 0), (0, 0, 250), (9, 9, 9)])]  # fmt: skip
    shares: list = []
    with torch.inference_mode():
        vlm.answer_logits(requests, attention=shares)
        inputs = vlm._inputs(requests, vlm.letter_tokens(("A", "B")).forced)
        attentions = vlm.model(**inputs, output_attentions=True).attentions
    is_image = inputs["input_ids"] == vlm.model.config.image_token_id
    assert is_image.sum(dim=1).min() > 0
    expected = torch.stack([image_attention_share(a[:, :, -1, :], is_image) for a in attentions], dim=1)
    assert len(shares) == 3 and len(shares[0]) == len(attentions) == 2
    torch.testing.assert_close(torch.tensor(shares), expected, rtol=1e-5, atol=1e-6)
    # And left padding cannot leak weight: padded keys carry none.
    pad = inputs["attention_mask"] == 0
    assert all(
        a[:, :, -1, :][pad[:, None, :].expand_as(a[:, :, -1, :])].abs().max() < 1e-6 for a in attentions if pad.any()
    )
