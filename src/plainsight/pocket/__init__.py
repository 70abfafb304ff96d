"""Pocket models: a small vision encoder and a LLaVA-layout VLM trained on CPU to exhibit the paper's effect.

``encoder.py`` trains a CLIP-config ViT on renders of a *train* split of the embedded benchmark (other seeds than
the evaluation data); ``vlm.py`` puts it, frozen, under an MLP projector and a small Llama; ``build.py`` is the
recipe and ``plainsight fixtures pocket``, which writes ``fixtures/models/pocket-encoder`` and ``pocket-vlm`` (the
default run's ``pocket-encoder`` and ``pocket-vlm``) and ``pocket.json`` (recipe and file hashes).
"""
