"""The paper's "can the gap close?" study on one VLM and one task, in one command.

    python scripts/adapt_study.py --model tiny-llava --task depth --out reports/adapt-study
    python scripts/adapt_study.py --colour-llava --out reports/adapt-study-colour

Tunes the model six ways on the same train split — 1, 5 and 10 prefix embeddings (prompt
tuning) and LoRA on the LLM, the projector and the vision encoder — writes a models.toml with
the original and the six tuned entries, and runs ``pytest evals -k <task>`` on it: report.md
then holds every tuned entry beside the original on the same held-out items (accuracy, McNemar
p, blind accuracy, attention on image tokens per layer).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (name suffix, method, component, tokens, rank)
STUDY = [
    ("prompt1", "prompt", "prefix", 1, None),
    ("prompt5", "prompt", "prefix", 5, None),
    ("prompt10", "prompt", "prefix", 10, None),
    ("lora-llm", "lora", "llm", None, 8),
    ("lora-projector", "lora", "projector", None, 8),
    ("lora-vision", "lora", "vision", None, 8),
]
_COPIED = ("kind", "revision", "adapter", "image_mode", "feature_layer", "dtype", "device", "pairs_with",
           "trust_remote_code", "smoke", "scoring", "max_new_tokens", "batch_size")  # fmt: skip


def _table(entry) -> str:
    """A models.toml table for an entry, with its source made absolute."""
    lines = [f"[models.{entry.name}]", f"source = {json.dumps(entry.resolved_source())}"]
    for key in _COPIED:
        value = getattr(entry, key)
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    if entry.options:
        lines.append("options = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in entry.options.items()) + " }")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-llava")
    parser.add_argument("--colour-llava", action="store_true", help="build and study the colour-seeing tiny LLaVA")
    parser.add_argument("--model-config", type=Path, default=REPO / "fixtures" / "models.toml")
    parser.add_argument("--task", default="depth")
    parser.add_argument("--train-items", type=int, default=60)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lora-lr", type=float, default=3e-3)
    parser.add_argument("--prompt-lr", type=float, default=3e-2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "adapt-study")
    parser.add_argument("--only", default="", help="comma-separated study names (e.g. lora-llm,prompt10); default all")
    args = parser.parse_args()

    from plainsight.adapt import AdaptPlan, run_adapt
    from plainsight.errors import ConfigError
    from plainsight.models.registry import load_models_toml

    args.out.mkdir(parents=True, exist_ok=True)
    if args.colour_llava:
        from plainsight.models.tiny import build_colour_llava

        folder = build_colour_llava(args.out / "colour-llava", seed=args.seed)
        args.model, args.model_config = "colour-llava", args.out / "base.toml"
        args.model_config.write_text(f'[models.colour-llava]\nkind = "vlm"\nsource = "{folder}"\n'
                                     'image_mode = "side_by_side"\nsmoke = true\n')  # fmt: skip
    entries = load_models_toml(args.model_config)
    base = entries[args.model]
    toml = [_table(base)]
    if base.pairs_with and base.pairs_with in entries:
        toml.append(_table(entries[base.pairs_with]))
    wanted = set(filter(None, args.only.split(",")))
    for suffix, method, component, tokens, rank in STUDY:
        if wanted and suffix not in wanted:
            continue
        plan = AdaptPlan(method=method, component=component, tokens=tokens, rank=rank, steps=args.steps,
                         lr=args.prompt_lr if method == "prompt" else args.lora_lr,
                         batch_size=args.batch_size, train_items=args.train_items, seed=args.seed)  # fmt: skip
        folder = args.out / "adapters" / suffix
        try:
            record = run_adapt(base, args.task, plan, folder)
        except ConfigError as exc:
            print(f"{suffix}: not trained: {exc}")
            continue
        print(f"{suffix}: loss {record['loss'][0]:.3f} -> {sum(record['loss'][-10:]) / 10:.3f}, train accuracy "
              f"{record['train_accuracy_before']:.3f} -> {record['train_accuracy_after']:.3f} ({record['seconds']:.1f}s)")  # fmt: skip
        toml.append(f'[models.{args.model}-{suffix}]\nbase = "{args.model}"\nadapter_dir = "adapters/{suffix}"\n')
    config = args.out / "models.toml"
    config.write_text("\n".join(toml))
    # The study reports, it does not gate: the default thresholds name models this config does not have.
    thresholds = args.out / "thresholds.toml"
    thresholds.write_text("[defaults.vlm]\nabove_chance = true\n")
    command = [sys.executable, "-m", "pytest", str(REPO / "evals"), "-k", args.task, "--model-config", str(config),
               "--models", f"{args.model}*", "--report-dir", str(args.out / "report"), "-q", "-p", "no:cacheprovider",
               "--seed", str(args.seed), "--thresholds", str(thresholds)]  # fmt: skip
    print(" ".join(command))
    status = subprocess.call(command, cwd=REPO)
    report = (args.out / "report" / "report.md").read_text()
    start = report.find("## Tuned vs original")
    print(report[start : report.find("\n## ", start + 5)] if start >= 0 else report)
    return status


if __name__ == "__main__":
    sys.exit(main())
