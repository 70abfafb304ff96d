"""Train the pocket encoder (issue #20 prototype) and write a models.toml/thresholds.toml to evaluate it.

    nice -n 19 .venv/bin/python scripts/pocket_encoder.py --train-root /tmp/pocket/train1 --out /tmp/pocket/encoder
    nice -n 19 .venv/bin/pytest evals --model-config /tmp/pocket/models.toml \
        --thresholds /tmp/pocket/thresholds.toml --report-dir /tmp/pocket/report -p no:cacheprovider

The train root is the embedded benchmark built with another seed (built here when missing);
``--check-disjoint`` compares every train image (RGB content hash) and item id with the evaluation
data's (fixtures/data) and stops when any is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

TASKS = ("low_level_matching", "semantic_correspondence", "functional_correspondence", "depth", "object_3d",
         "art_style")  # fmt: skip


def image_hashes_and_ids(root: Path | None) -> tuple[set[str], set[str]]:
    from plainsight.data import embedded_root
    from plainsight.data.nyuv2 import open_nyuv2
    from plainsight.tasks import LoadRequest, get_task

    hashes, ids = set(), set()
    for task_id in TASKS:
        for item in get_task(task_id).load_items(LoadRequest(data_root=root)):
            ids.add(f"{task_id}:{item.id}")
            for im in item.load_images():
                hashes.add(hashlib.sha256(im.tobytes() + repr(im.size).encode()).hexdigest())
    nyu = open_nyuv2(root if root is not None else embedded_root())
    for index in sorted(set(nyu.train.tolist()) | set(nyu.test.tolist())):
        image, _ = nyu.frame(int(index))
        hashes.add(hashlib.sha256(image.tobytes() + repr((image.shape[1], image.shape[0])).encode()).hexdigest())
    return hashes, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-root", type=Path, default=Path("/tmp/pocket/train1"))
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/pocket/encoder"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weights", type=str, default="", help="e.g. corr=1,odd=1,style=1,depth=1")
    parser.add_argument("--check-disjoint", action="store_true")
    parser.add_argument("--toml-dir", type=Path, default=Path("/tmp/pocket"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from plainsight.pocket.encoder import EncoderRecipe, train_pocket_encoder

    if not args.train_root.exists():
        from plainsight.embedded import build_all

        t = time.perf_counter()
        build_all(args.train_root, seed=args.train_seed)
        print(f"built train split (seed {args.train_seed}) in {time.perf_counter() - t:.0f}s")
    weights = {"corr": 1.0, "odd": 1.0, "style": 1.0, "depth": 1.0, "warp": 1.0}
    for part in filter(None, args.weights.split(",")):
        key, value = part.split("=")
        weights[key] = float(value)
    recipe = EncoderRecipe(steps=args.steps, seed=args.seed, image_size=args.image_size, hidden=args.hidden,
                           layers=args.layers, lr=args.lr, weights=weights)  # fmt: skip
    from plainsight.pocket.encoder import build_train_set

    data = build_train_set(args.train_root, recipe)
    if args.check_disjoint:
        eval_h, eval_ids = image_hashes_and_ids(None)
        train_h, train_ids = image_hashes_and_ids(args.train_root)
        used = set(data.image_hashes)
        print(f"disjoint check: {len(used)} images trained on, {len(used & eval_h)} of them among the "
              f"{len(eval_h)} evaluation images; the train folder as a whole shares {len(train_h & eval_h)} images "
              f"(HPatches 1.ppm, not trained on) and {len(train_ids & eval_ids)} of {len(eval_ids)} item ids (ids are "
              "positional names, e.g. val_Art_Style_1)")  # fmt: skip
        if used & eval_h:
            raise SystemExit("train and evaluation images overlap")
    record = train_pocket_encoder(args.train_root, args.out, recipe, data=data)
    print(json.dumps(record, indent=1))
    args.toml_dir.mkdir(parents=True, exist_ok=True)
    (args.toml_dir / "models.toml").write_text(
        f'[models.pixels]\nkind = "encoder"\nsource = "pixels"\n\n'
        f'[models.tiny-dinov2]\nkind = "encoder"\nsource = "{Path("fixtures/models/tiny-dinov2").resolve()}"\n\n'
        f'[models.pocket-encoder]\nkind = "encoder"\nsource = "{args.out.resolve()}"\n'
    )
    (args.toml_dir / "thresholds.toml").write_text("[defaults.vision]\nabove_chance = false\n\n"
                                                   "[defaults.vlm]\nabove_chance = false\n")  # fmt: skip


if __name__ == "__main__":
    main()
