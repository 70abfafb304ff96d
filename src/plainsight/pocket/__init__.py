"""Pocket models (issue #20, prototype): a small vision encoder and a LLaVA-layout VLM trained on CPU.

Not wired into the default run: `scripts/pocket_*.py` build and measure them. ``encoder.py`` trains a
CLIP-config ViT on renders of a *train* split of the embedded benchmark (another seed than the
evaluation data), ``vlm.py`` puts it, frozen, under an MLP projector and a small Llama.
"""
