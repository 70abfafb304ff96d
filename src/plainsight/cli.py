"""The `plainsight` command: inspect items, render what a model sees, build the embedded benchmark."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from plainsight.errors import PlainsightError


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="task id, e.g. low_level_matching")
    p.add_argument(
        "--data-root", type=Path, default=None, help="folder holding real datasets (default: embedded benchmark)"
    )
    p.add_argument(
        "--source",
        default=None,
        help="dataset format where the folder holds several (hpatches, spair, funkpoint, blink, cvbench, mochi); "
        "default: the task's first one present",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a task option, repeatable, e.g. n_objects=4 for object_3d",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None)


def _load_items(args: argparse.Namespace):
    from plainsight.tasks import LoadRequest, all_tasks, get_task, parse_task_options

    if args.data_root is not None and not args.data_root.is_dir():
        raise PlainsightError(f"--data-root {args.data_root}: no such folder")
    from plainsight.tasks.sources import check_source_name

    task = get_task(args.task)
    check_source_name(args.source, set(task.sources))
    options = parse_task_options(args.option, all_tasks(), task=task.id).get(task.id, {})
    root = args.data_root.resolve() if args.data_root else None
    req = LoadRequest(data_root=root, seed=args.seed, limit=args.limit, source=args.source, options=options)
    return task, task.load_items(req)


def cmd_items(args: argparse.Namespace) -> int:
    _, items = _load_items(args)
    for item in items:
        if args.json:
            print(json.dumps(item.to_json(), sort_keys=True))
        else:
            print(f"{item.id}\tgold={item.gold}\t{_geometry_summary(item)}")
    return 0


def _geometry_summary(item) -> str:
    """Each image's points and boxes on one line (tasks without geometry: the image sizes)."""
    parts = []
    for i, im in enumerate(item.images):
        marks = [f"{k}=({v[0]:.1f},{v[1]:.1f})" for k, v in im.points.items()]
        marks += [f"{k}=[{', '.join(f'{c:.0f}' for c in box)}]" for k, box in im.boxes.items()]
        parts.append(f"img{i + 1} " + (", ".join(marks) if marks else f"{im.size[0]}x{im.size[1]}"))
    return "; ".join(parts)


def cmd_show(args: argparse.Namespace) -> int:
    from plainsight import geometry
    from plainsight.views import vlm_view

    task, items = _load_items(args)
    by_id = {it.id: it for it in items}
    if args.item_id not in by_id:
        raise PlainsightError(
            f"no item {args.item_id!r} in task {args.task}; try `plainsight items --task {args.task}`"
        )
    item = by_id[args.item_id]
    shown = task.render(item, item.load_images())
    if args.model:
        from plainsight.models.loading import preprocess_spec
        from plainsight.models.registry import load_models_toml

        entries = load_models_toml(args.model_config)
        if args.model not in entries:
            raise PlainsightError(f"{args.model_config}: no model {args.model!r}; known: {sorted(entries)}")
        entry = entries[args.model]
        spec = preprocess_spec(entry)
        if entry.kind == "vlm":  # composed and letterboxed exactly as the run shows it
            shown, invalid = vlm_view(task.render, item, entry.image_mode, spec, image_resize=entry.image_resize)
            if invalid:
                print(f"invalid for {entry.name}: {invalid}")
        if spec is not None:
            shown = [geometry.apply(spec, im) for im in shown]
    from plainsight.render import image_strip

    sheet = image_strip(shown)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({sheet.size[0]}x{sheet.size[1]}, gold {item.gold})")
    return 0


def cmd_fixtures_build(args: argparse.Namespace) -> int:
    from plainsight.embedded import build_all
    from plainsight.models.tiny import build_tiny_dinov2, build_tiny_llava

    summary = build_all(args.out, seed=args.seed)
    if args.models_out is not None:
        summary["models"] = [
            str(build_tiny_llava(args.models_out / "tiny-llava", seed=args.seed)),
            str(build_tiny_dinov2(args.models_out / "tiny-dinov2", seed=args.seed)),
        ]
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def cmd_fixtures_pocket(args: argparse.Namespace) -> int:
    import tempfile

    from plainsight.pocket.build import POCKET, build_pocket, compare_builds, write_manifest

    recipe = POCKET if args.seed is None else POCKET.with_seed(args.seed)
    started = time.perf_counter()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            summary = build_pocket(Path(tmp), recipe)
            differences = compare_builds(args.models_out, Path(tmp))
    else:
        summary = build_pocket(args.models_out, recipe)
        write_manifest(args.models_out, summary)
        differences = []
    summary["seconds"]["total"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, indent=2, sort_keys=True))
    if args.check:
        for line in differences:
            print(f"differs: {line}")
        print("pocket check: " + ("the rebuild differs from " if differences else "byte-identical to ")
              + str(args.models_out))  # fmt: skip
    return 1 if differences else 0


def cmd_fixtures_sheet(args: argparse.Namespace) -> int:
    from plainsight.contact_sheet import contact_sheet

    root = args.data_root.resolve() if args.data_root else None
    sheet = contact_sheet(root, per_task=args.per_task, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.size[0]}x{sheet.size[1]})")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from plainsight import report as report_mod
    from plainsight.merge import merge_runs

    metadata, records, rows = merge_runs(args.dirs, args.thresholds, baseline_dir=args.baseline)
    out = args.out
    report_mod.atomic_write(out / "items.jsonl", "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    report_mod.write_results(out, metadata, records)
    report_mod.write_markdown(out, metadata, records)
    from plainsight.report_html import item_images_from_run, load_run, write_html

    results, items = load_run(out)
    write_html(out, results, items, item_images=None if args.no_images else item_images_from_run(results))
    print(report_mod.format_table(report_mod.SUMMARY_HEADER, report_mod.summary_rows([r.to_json() for r in records])))
    failed = [r for r in records if r.verdict == "fail"]
    for r in failed:
        print(f"FAIL {r.label}: {r.reason}")
    print(f"merged {len(args.dirs)} shards -> {out / 'results.json'} ({len(records)} records, {len(failed)} failed)")
    return 1 if failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from plainsight.baseline import Baseline, compare_runs
    from plainsight.report import format_table

    rows = compare_runs(Baseline.load(args.a), Baseline.load(args.b))
    if not rows:
        raise PlainsightError(f"{args.a} and {args.b} share no (task, model, role) with items scored by both")
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    header = ["task", "model", "role", "n", "acc A", "acc B", "B - A", "only A", "only B", "McNemar p", "same items"]
    table = [
        [r["task"], r["model"], r["role"], str(r["n_shared"]), f"{r['accuracy_a']:.3f}", f"{r['accuracy_b']:.3f}",
         f"{r['difference']:+.3f}", str(r["only_a_correct"]), str(r["only_b_correct"]), f"{r['mcnemar_p']:.3g}",
         "yes" if r["same_items"] else "no"]
        for r in rows
    ]  # fmt: skip
    print(format_table(header, table))
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    import logging

    from plainsight.adapt import AdaptPlan, models_toml_snippet, run_adapt
    from plainsight.models.registry import load_models_toml
    from plainsight.tasks import all_tasks, parse_task_options

    entries = load_models_toml(args.model_config)
    if args.model not in entries:
        raise PlainsightError(f"{args.model_config}: no model {args.model!r}; known: {sorted(entries)}")
    if args.data_root is not None and not args.data_root.is_dir():
        raise PlainsightError(f"--data-root {args.data_root}: no such folder")
    component = args.component if args.method == "lora" else "prefix"
    plan = AdaptPlan(
        method=args.method, component=component, steps=args.steps, tokens=args.tokens, rank=args.rank, lr=args.lr,
        batch_size=args.batch_size, train_items=args.train_items, train_fraction=args.train_fraction, seed=args.seed,
    )  # fmt: skip
    options = parse_task_options(args.option, all_tasks(), task=args.task).get(args.task, {})
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    record = run_adapt(
        entries[args.model], args.task, plan, args.out, data_root=args.data_root.resolve() if args.data_root else None,
        source=args.source, task_options=options, device=args.device, dtype=args.dtype, limit=args.limit,
    )  # fmt: skip
    loss = record["loss"]
    print(f"tuned {args.model} on {record['n_train']} {args.task} items ({record['trainable_parameters']} trainable "
          f"parameters, {record['steps']} steps, {record['seconds']:.1f}s): loss {loss[0]:.3f} -> {loss[-1]:.3f}, "
          f"train accuracy {record['train_accuracy_before']:.3f} -> {record['train_accuracy_after']:.3f}")  # fmt: skip
    name = args.name or f"{args.model}-{args.method}-{component}"
    print(f"wrote {args.out}; {record['n_held_out']} items are held out. Add to {args.model_config}:\n")
    print(models_toml_snippet(name, args.model, args.out, args.model_config.parent))
    print(f"then: pytest evals -k {args.task} --models {args.model},{name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plainsight", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("items", help="list a task's items (one JSON object per line with --json)")
    _add_data_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_items)

    p = sub.add_parser("show", help="render an item as the VLM sees it")
    _add_data_args(p)
    p.add_argument("item_id")
    p.add_argument("--model", default=None, help="apply this model's image mode and preprocessing")
    p.add_argument("--model-config", type=Path, default=Path("fixtures/models.toml"))
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "compare", help="per-pair differences between two runs (report or baseline folders), paired McNemar p"
    )
    p.add_argument("a", type=Path, help="first run folder (results.json + items.jsonl)")
    p.add_argument("b", type=Path, help="second run folder")
    p.add_argument("--json", action="store_true", help="one JSON object per (task, model, role)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("merge", help="combine the report folders of sharded runs (--shard i/n) into one gated report")
    p.add_argument("dirs", type=Path, nargs="+", help="the --report-dir of every shard")
    p.add_argument("--out", type=Path, default=Path("reports/merged"))
    p.add_argument("--thresholds", type=Path, default=Path("fixtures/thresholds.toml"))
    p.add_argument(
        "--no-images", action="store_true", help="report.html without item images (data not on this machine)"
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also fail pairs significantly worse than the run stored in DIR (--update-baseline DIR)",
    )
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("adapt", help="tune a VLM (prompt prefix or LoRA on one component) on a train split of a task")
    _add_data_args(p)
    p.add_argument("--model", required=True, help="a vlm entry of --model-config")
    p.add_argument("--model-config", type=Path, default=Path("fixtures/models.toml"))
    p.add_argument("--method", choices=("prompt", "lora"), required=True)
    p.add_argument("--component", choices=("llm", "projector", "vision"), default="llm", help="lora: what to tune")
    p.add_argument("--tokens", type=int, default=None, help="prompt: prefix embeddings (the paper: 1, 5, 10)")
    p.add_argument("--rank", type=int, default=None, help="lora: rank (alpha = 2 x rank)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 3e-2 prompt, 1e-3 lora)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--train-items", type=int, default=None, help="train on this many items (default: --train-fraction)")
    p.add_argument("--train-fraction", type=float, default=0.375)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--name", default=None, help="the tuned entry's name (default: <model>-<method>-<component>)")
    p.add_argument("--out", type=Path, required=True, help="the adapter folder to write")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("fixtures", help="the embedded benchmark")
    fsub = p.add_subparsers(dest="fixtures_command", required=True)
    b = fsub.add_parser("build", help="(re)generate the embedded benchmark deterministically")
    b.add_argument("--out", type=Path, default=Path("fixtures/data"))
    b.add_argument(
        "--models-out",
        type=Path,
        default=Path("fixtures/models"),
        help="where the tiny default-matrix models go (same seed -> identical files)",
    )
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=cmd_fixtures_build)
    k = fsub.add_parser(
        "pocket", help="train the pocket encoder and VLM on a train split (CPU, deterministic, under 10 minutes)"
    )
    k.add_argument("--models-out", type=Path, default=Path("fixtures/models"))
    k.add_argument("--seed", type=int, default=None, help="model seed (default: the shipped recipe's, 0)")
    k.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temporary folder and compare with --models-out byte for byte (exit 1 if not)",
    )
    k.set_defaults(func=cmd_fixtures_pocket)
    c = fsub.add_parser("sheet", help="a contact sheet PNG: a few items of every task as the VLM sees them")
    c.add_argument("--out", type=Path, default=Path("docs/benchmark.png"))
    c.add_argument(
        "--data-root", type=Path, default=None, help="folder holding real datasets (default: embedded benchmark)"
    )
    c.add_argument("--per-task", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=cmd_fixtures_sheet)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PlainsightError as exc:
        print(f"plainsight: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"plainsight: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
