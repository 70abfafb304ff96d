"""One prepared check of the CUDA paths, for a machine with a GPU (prints what a note needs).

    python scripts/cuda_check.py                      # on a GPU machine: about a minute
    python scripts/cuda_check.py --device cpu --no-evals   # the same code path on the CPU (tests run this)

1. Placement and dtype: for each dtype (bfloat16, float16), the default matrix's models load on the device
   in that dtype (checked on their parameters), score the embedded low-level items, and none scores NaN.
2. Memory release: after each model is released, CUDA allocated memory is back to the baseline (±1 MiB)
   before the next loads.
3. Batching: tiny-llava's letter scores in float32, batched (batch_size 8; prompts of four lengths, so rows
   are left-padded) against one item at a time: the largest difference must stay under 1e-3; in bfloat16 the difference and argmax agreement are printed.
4. The evals themselves: `pytest evals --device <device> --dtype bfloat16`, exit status and summary line.

Every check prints ``ok`` or ``FAIL`` with its numbers; the exit status is 1 when any failed, 2 without CUDA.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "fixtures" / "data"
TASK = "low_level_matching"
MiB = 2**20


class Checks:
    """Collects check results; each prints as it is made."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def __call__(self, passed: bool, what: str) -> None:
        print(f"{'ok  ' if passed else 'FAIL'} {what}", flush=True)
        if not passed:
            self.failed.append(what)


def allocated(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    return torch.cuda.memory_allocated()


def parameters_of(model: object) -> torch.nn.Parameter | None:
    """The first parameter of a loaded encoder or VLM (the pixels baseline has none)."""
    module = getattr(model, "model", None)
    if isinstance(module, torch.nn.Module):
        return next(module.parameters(), None)
    return None


def check_placement_and_release(check: Checks, entries: dict, device: str, dtype: str, limit: int) -> None:
    from plainsight.runner import Runner, RunOptions

    runner = Runner(RunOptions(data_root=DATA, device=device, dtype=dtype, limit=limit), entries)
    baseline = allocated(device)
    for name, role in (("tiny-dinov2", "vision"), ("tiny-llava", "vlm"), ("tiny-llava", "blind")):
        run = runner.run(TASK, name, role)
        param = parameters_of(runner.model(name))
        where = f"{param.device} {param.dtype}" if param is not None else "no parameters"
        check(param is not None and param.device.type == torch.device(device).type and str(param.dtype) == f"torch.{dtype}",
              f"{dtype}: {name} {role} parameters on {where}")  # fmt: skip
        nan = sum(o.reason == "nan" for o in run.outcomes)
        valid = sum(o.valid for o in run.outcomes)
        check(valid > 0 and nan == 0, f"{dtype}: {name} {role}: {len(run.outcomes)} items, {valid} valid, "
              f"{sum(o.correct for o in run.outcomes)} correct, {nan} NaN, {run.seconds:.2f}s (record: "
              f"{run.info.get('device')} {run.info.get('dtype')})")  # fmt: skip
        if role == "vlm":
            continue  # the blind run reuses the loaded VLM
        runner.release()
        after = allocated(device)
        if after is None:
            print(f"     {name} released (CUDA memory check n/a on {device})")
        else:
            check(after <= baseline + MiB, f"{dtype}: after releasing {name}: allocated {after / MiB:.1f} MiB "
                  f"(baseline {baseline / MiB:.1f} MiB)")  # fmt: skip


def check_batching(check: Checks, entries: dict, device: str, limit: int) -> None:
    from plainsight.tasks import get_task

    task = get_task(TASK)
    # TF32 convolutions (cuDNN's default on Ampere and later) would blur an exactness check of padding and batching.
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for dtype in ("float32", "bfloat16"):
            _compare_batched_with_single(check, entries, device, limit, dtype, task)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def _compare_batched_with_single(check: Checks, entries: dict, device: str, limit: int, dtype: str, task) -> None:
    """tiny-llava's letter scores in ``dtype``, batch_size 8 against 1 (float32 must agree to 1e-3)."""
    from plainsight.models.vlms import VLMRequest
    from plainsight.runner import Runner, RunOptions
    from plainsight.views import vlm_preprocess_spec, vlm_view

    runner = Runner(RunOptions(data_root=DATA, device=device, dtype=dtype, limit=limit), entries)
    vlm = runner.model("tiny-llava")
    spec = vlm_preprocess_spec(vlm)
    requests = []
    for k, item in enumerate(runner.items(TASK)):
        shown, invalid = vlm_view(task.render, item, entries["tiny-llava"].image_mode, spec)
        if invalid is None:  # prompts of four lengths, so batches are left-padded
            requests.append(VLMRequest(shown, "Look closely. " * (k % 4) + item.prompt, item.choices, item=item))
    vlm.batch_size = 8
    batched = vlm.score_letters(requests)
    vlm.batch_size = 1
    single = vlm.score_letters(requests)
    diff = max(abs(b.logprobs[k] - s.logprobs[k]) for b, s in zip(batched, single) for k in b.logprobs)
    agree = sum(max(b.logprobs, key=b.logprobs.get) == max(s.logprobs, key=s.logprobs.get)
                for b, s in zip(batched, single)) / len(requests)  # fmt: skip
    what = f"{dtype}: batched (8) vs one at a time, {len(requests)} items: max |Δ logprob| {diff:.2e}, argmax agreement {agree:.3f}"
    if dtype == "float32":
        check(diff < 1e-3, what)
    else:
        print(f"     {what}")
    runner.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="bfloat16,float16", help="comma-separated dtypes for the placement check")
    parser.add_argument("--items", type=int, default=120, help="low-level items per run")
    parser.add_argument("--no-evals", action="store_true", help="skip step 4 (pytest evals)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("cuda_check: no CUDA device visible", file=sys.stderr)
        return 2
    from plainsight.models.registry import load_models_toml

    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    else:
        print(f"device: {args.device}, torch {torch.__version__}")
    entries = load_models_toml(REPO / "fixtures" / "models.toml")
    check = Checks()
    for dtype in args.dtypes.split(","):
        check_placement_and_release(check, entries, args.device, dtype.strip(), args.items)
    check_batching(check, entries, args.device, args.items)
    if not args.no_evals:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider", "--device", args.device,
             "--dtype", "bfloat16", "--report-dir", str(REPO / "reports" / "cuda-check")],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        lines = proc.stdout.strip().splitlines() or ["(no output)"]
        check(
            proc.returncode == 0,
            f"pytest evals --device {args.device} --dtype bfloat16: exit {proc.returncode}; {lines[-1]}",
        )
    print(f"cuda_check: {len(check.failed)} check(s) failed" if check.failed else "cuda_check: all checks passed")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
