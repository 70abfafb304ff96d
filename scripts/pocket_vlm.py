"""Train the pocket VLM (issue #20 prototype) on a trained pocket encoder and write a models.toml to evaluate it.

    nice -n 19 .venv/bin/python scripts/pocket_vlm.py --encoder /tmp/pocket/encoder --out /tmp/pocket/vlm \
        --train-root /tmp/pocket/train1 --train-root /tmp/pocket/train2 \
        --align-task art_style --align-steps 600 --lr 1e-3 --steps 240 --instruct-lr 2e-4 --threads 2 \
        --task art_style --task semantic_correspondence --task art_style --task functional_correspondence \
        --task art_style --task depth --task art_style --task object_3d
    nice -n 19 .venv/bin/pytest evals --model-config /tmp/pocket/models.toml \
        --thresholds /tmp/pocket/thresholds.toml --models pocket-vlm --report-dir /tmp/pocket/report -p no:cacheprovider

Without --align-steps (one stage over all tasks) the LM stays at chance and answers one letter.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, default=Path("/tmp/pocket/encoder"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/pocket/vlm"))
    parser.add_argument("--train-root", type=Path, action="append")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text-hidden", type=int, default=128)
    parser.add_argument("--text-layers", type=int, default=2)
    parser.add_argument("--image-mode", default="separate", choices=("separate", "side_by_side"))
    parser.add_argument("--align-steps", type=int, default=0, help="first steps on --align-task only")
    parser.add_argument("--align-task", action="append", help="alignment-stage task(s); default depth")
    parser.add_argument("--task", action="append", help="instruction-stage task(s); default the recipe's five")
    parser.add_argument("--instruct-lr", type=float, default=None, help="instruction-stage lr after alignment")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--toml-dir", type=Path, default=Path("/tmp/pocket"))
    args = parser.parse_args()
    torch.set_num_threads(min(2, args.threads))

    from plainsight.pocket.vlm import VLMRecipe, train_pocket_vlm

    recipe = VLMRecipe(steps=args.steps, lr=args.lr, seed=args.seed, text_hidden=args.text_hidden,
                       text_layers=args.text_layers, image_mode=args.image_mode, align_steps=args.align_steps,
                       warmup=args.warmup, instruct_lr=args.instruct_lr)  # fmt: skip
    if args.align_task:
        recipe = replace(recipe, align_tasks=tuple(args.align_task))
    if args.task:
        recipe = replace(recipe, tasks=tuple(args.task))
    roots = args.train_root or [Path("/tmp/pocket/train1")]
    record = train_pocket_vlm(args.encoder, roots, args.out, recipe)
    print(json.dumps({k: v for k, v in record.items() if k != "loss"}, indent=1))
    args.toml_dir.mkdir(parents=True, exist_ok=True)
    (args.toml_dir / "models.toml").write_text(
        f'[models.pixels]\nkind = "encoder"\nsource = "pixels"\n\n'
        f'[models.tiny-dinov2]\nkind = "encoder"\nsource = "{Path("fixtures/models/tiny-dinov2").resolve()}"\n\n'
        f'[models.pocket-encoder]\nkind = "encoder"\nsource = "{args.encoder.resolve()}"\n\n'
        f'[models.pocket-vlm]\nkind = "vlm"\nsource = "{args.out.resolve()}"\nimage_mode = "{args.image_mode}"\n'
        'pairs_with = "own_tower"\n'
    )
    (args.toml_dir / "thresholds.toml").write_text("[defaults.vision]\nabove_chance = false\n\n"
                                                   "[defaults.vlm]\nabove_chance = false\n")  # fmt: skip


if __name__ == "__main__":
    main()
