"""One prepared check of the CUDA paths, for a machine with a GPU (prints what a note needs).

    python scripts/cuda_check.py

1. Device placement and bf16: the default matrix's models load on cuda in bfloat16 and score the embedded
   items; the records' device/dtype are printed.
2. Memory release: CUDA allocated memory after each model's release returns to the baseline before the next loads.
3. The evals themselves: `pytest evals --device cuda --dtype bfloat16` exit status and summary line.
Exits 2 without CUDA.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    if not torch.cuda.is_available():
        print("cuda_check: no CUDA device visible", file=sys.stderr)
        return 2
    from plainsight.models.registry import load_models_toml
    from plainsight.runner import Runner, RunOptions

    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    entries = load_models_toml(REPO / "fixtures" / "models.toml")
    runner = Runner(RunOptions(data_root=REPO / "fixtures" / "data", device="cuda", dtype="bfloat16"), entries)
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    print(f"allocated at start: {baseline / 2**20:.1f} MiB")
    for name, role in (("tiny-dinov2", "vision"), ("tiny-llava", "vlm"), ("tiny-llava", "blind")):
        run = runner.run("low_level_matching", name, role)
        correct = sum(o.correct for o in run.outcomes)
        print(f"{name} {role}: {len(run.outcomes)} items, {correct} correct, {run.info.get('device')} {run.info.get('dtype')}, "
              f"{run.seconds:.2f}s, allocated {torch.cuda.memory_allocated() / 2**20:.1f} MiB")
        if role != "vlm":
            runner.release()
            torch.cuda.synchronize()
            print(f"  after release: allocated {torch.cuda.memory_allocated() / 2**20:.1f} MiB (baseline {baseline / 2**20:.1f})")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider", "--device", "cuda", "--dtype", "bfloat16",
         "--report-dir", str(REPO / "reports" / "cuda")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    print(f"pytest evals on cuda/bf16: exit {proc.returncode}; {proc.stdout.strip().splitlines()[-1]}")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
