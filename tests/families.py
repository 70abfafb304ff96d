"""Tiny random VLMs of every supported family, for the family tests.

Where ../shared/hf-configs has a checkpoint's real files, the real tokenizer, processor and
chat template are used with shrunk dimensions; otherwise the family's config and processor
classes are built with its real special-token layout and template shape.
"""

from __future__ import annotations

import torch

from conftest import hf_config_dir
from plainsight.models.tiny import LLAVA_TEMPLATE, build_bpe_tokenizer, shrink_vlm_config
from plainsight.models.vlms import HFVLM, vlm_class

QWEN_STYLE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type']=='image' %}"
    "IMAGE\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IDEFICS_STYLE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _text(tok, **kw):
    return dict(model_type=kw.pop("model_type", "llama"), vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                pad_token_id=tok.pad_token_id, **kw)  # fmt: skip


def _vision(**kw):
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, **kw)


def _wrap(name, model, processor) -> HFVLM:
    return vlm_class(model.config.model_type)(name, model.eval(), processor)


def real_config(folder_name: str) -> HFVLM:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = hf_config_dir(folder_name)
    torch.manual_seed(0)
    return _wrap(folder_name, AutoModelForImageTextToText.from_config(shrink_vlm_config(folder)),
                 AutoProcessor.from_pretrained(folder))  # fmt: skip


def llava_next() -> HFVLM:
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    tok = build_bpe_tokenizer(["<pad>", "<s>", "</s>", "<image>"], pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                              extra_special_tokens={"image_token": "<image>"})  # fmt: skip
    grid = [[32, 64], [64, 32], [32, 32]]
    ip = LlavaNextImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=grid
    )
    proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                              chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1)  # fmt: skip
    cfg = LlavaNextConfig(vision_config=_vision(model_type="clip_vision_model", image_size=32, patch_size=8),
                          text_config=_text(tok), image_token_id=tok.convert_tokens_to_ids("<image>"),
                          image_grid_pinpoints=grid, vision_feature_layer=-2)  # fmt: skip
    torch.manual_seed(0)
    return _wrap("llava-next", LlavaNextForConditionalGeneration(cfg), proc)


def llava_onevision() -> HFVLM:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,  # fmt: skip
        LlavaOnevisionVideoProcessor,
    )

    tok = build_bpe_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
                              pad_token="<|endoftext|>", eos_token="<|im_end|>",
                              extra_special_tokens={"image_token": "<image>", "video_token": "<video>"})  # fmt: skip
    grid = [[32, 32], [32, 64], [64, 32]]
    proc = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=grid),
        tokenizer=tok, video_processor=LlavaOnevisionVideoProcessor(size={"height": 32, "width": 32}),
        num_image_tokens=16, vision_feature_select_strategy="full", chat_template=QWEN_STYLE.replace("IMAGE", "<image>"),
    )  # fmt: skip
    cfg = LlavaOnevisionConfig(vision_config=_vision(model_type="siglip_vision_model", image_size=32, patch_size=8),
                               text_config=_text(tok, model_type="qwen2"), image_token_id=tok.convert_tokens_to_ids("<image>"),
                               video_token_id=tok.convert_tokens_to_ids("<video>"), image_grid_pinpoints=grid,
                               vision_feature_layer=-1, vision_feature_select_strategy="full")  # fmt: skip
    torch.manual_seed(0)
    return _wrap("llava-onevision", LlavaOnevisionForConditionalGeneration(cfg), proc)


def idefics3() -> HFVLM:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    special = ["<pad>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>"]
    special += [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tok = build_bpe_tokenizer(special, pad_token="<pad>", bos_token="<|im_start|>", eos_token="<end_of_utterance>")
    ip = Idefics3ImageProcessorPil(
        size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True
    )
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=IDEFICS_STYLE)
    cfg = Idefics3Config(vision_config=_vision(image_size=32, patch_size=8), text_config=_text(tok), scale_factor=2,
                         image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    return _wrap("idefics3", Idefics3ForConditionalGeneration(cfg), proc)


def internvl() -> HFVLM:
    from transformers import (
        GotOcr2ImageProcessorPil,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,  # fmt: skip
    )

    tok = build_bpe_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"],
        pad_token="<|endoftext|>", eos_token="<|im_end|>",
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"},
    )  # fmt: skip
    proc = InternVLProcessor(
        image_processor=GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=False), tokenizer=tok,
        video_processor=InternVLVideoProcessor(size={"height": 32, "width": 32}), image_seq_length=4,
        chat_template=QWEN_STYLE.replace("IMAGE", "<IMG_CONTEXT>"),
    )  # fmt: skip
    cfg = InternVLConfig(vision_config=_vision(image_size=[32, 32], patch_size=[8, 8]), text_config=_text(tok, model_type="qwen2"),
                         image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5, image_seq_length=4)  # fmt: skip
    torch.manual_seed(0)
    return _wrap("internvl", InternVLForConditionalGeneration(cfg), proc)


def paligemma() -> HFVLM:
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )

    tok = build_bpe_tokenizer(["<pad>", "<bos>", "<eos>", "<image>"], pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                              extra_special_tokens={"image_token": "<image>"})  # fmt: skip
    ip = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    ip.image_seq_length = 16
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)
    cfg = PaliGemmaConfig(vision_config=_vision(model_type="siglip_vision_model", image_size=32, patch_size=8, projection_dim=32),
                          text_config=_text(tok, model_type="gemma", head_dim=16),
                          image_token_id=tok.convert_tokens_to_ids("<image>"), projection_dim=32)  # fmt: skip
    torch.manual_seed(0)
    return _wrap("paligemma", PaliGemmaForConditionalGeneration(cfg), proc)


FAMILIES = {
    "llava-1.5": lambda: real_config("llava-hf__llava-1.5-7b-hf"),
    "qwen2-vl": lambda: real_config("Qwen__Qwen2-VL-2B-Instruct"),
    "qwen2.5-vl": lambda: real_config("Qwen__Qwen2.5-VL-7B-Instruct"),
    "smolvlm": lambda: real_config("HuggingFaceTB__SmolVLM-256M-Instruct"),
    "llava-next": llava_next,
    "llava-onevision": llava_onevision,
    "idefics3": idefics3,
    "internvl": internvl,
    "paligemma": paligemma,
}
