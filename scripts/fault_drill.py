"""Fault drill: kill a real run with SIGKILL at random moments, resume it each time, and check
that it ends with the metrics of an uninterrupted run; report what checkpoints cost.

The run: the digits that ship with scikit-learn (real images, offline), a CNN teacher trained
from scratch, distillation into a ResNet-8, gradual (AGP) pruning with a fine-tune, and
weight sharing with a centroid fine-tune. Kill moments cycle through three kinds: a random
time, while a checkpoint file is being written (its temporary file seen on disk), and right
as a new step starts. Prints a table and writes JSON.

    python scripts/fault_drill.py --kills 10 --out bench_results/fault_drill
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from distillcli.record import comparable

RECIPE = {
    "name": "fault-drill",
    "seed": 0,
    "device": "cpu",
    "data": {"name": "digits", "image_size": 32, "batch_size": 32},
    "teacher": {"arch": "cnn", "args": {"width": 16}},
    "student": {"arch": "resnet8", "args": {"width": 0.5}},
    "steps": [
        {"train": {"model": "teacher", "epochs": 12, "lr": 0.05}},
        {"distill": {"epochs": 12, "lr": 0.05}},
        {"prune": {"method": "unstructured", "sparsity": 0.6, "schedule": "gradual", "frequency": 10,
                   "latency": False, "finetune": {"epochs": 6, "lr": 0.02}}},
        {"share": {"clusters": 16, "epochs": 3, "lr": 0.0005}},
    ],
    "report": {"latency": False},
    "checkpoint": {"every_epochs": 1, "every_minutes": 0.02},
}
def distill(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distillcli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def checkpoint_position(run_dir: Path) -> str:
    import torch

    path = run_dir / "checkpoints" / "state.pt"
    if not path.is_file():
        return "none"
    state = torch.load(path, weights_only=True)
    fits = state["fits"]
    if not fits:
        return f"step {state['step']} start"
    last = fits[-1]
    return f"step {state['step']} loop {len(fits)} epoch {last.get('epoch', 0)} batch {last.get('batch', 0)}"


def watch(proc: subprocess.Popen) -> "queue.Queue[str]":
    """The process's stderr lines, read by a thread (so waiting never blocks on the pipe)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for(proc: subprocess.Popen, lines: "queue.Queue[str]", pattern: re.Pattern, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if pattern.search(lines.get(timeout=0.05)):
                return True
        except queue.Empty:
            pass
    return False


READY = re.compile(r"^(run \S+ -> |resuming )")
STEP_START = re.compile(r"^step \d+: \w+ \[\w+\]$")


def wait_and_kill(proc: subprocess.Popen, mode: str, run_dir: Path, delay: float) -> float:
    """SIGKILL ``proc`` at the moment ``mode`` asks for, once it has started working;
    returns seconds since it started."""
    t0 = time.monotonic()
    lines = watch(proc)
    wait_for(proc, lines, READY, 120)
    folder = run_dir / "checkpoints"
    if mode == "checkpoint-write":  # poll for a new temporary file of atomic_path, then kill at once
        def temps() -> set[str]:
            return {p.name for p in folder.iterdir() if p.name.startswith(".state.pt.")} if folder.is_dir() else set()

        stale = temps()  # left by the previous kill (the resumed process removes them)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not temps() - stale:
            time.sleep(0.0002)
    elif mode == "step-start":  # the next step to start after the one this process began with
        wait_for(proc, lines, STEP_START, 120)
        wait_for(proc, lines, STEP_START, 600)
    else:
        deadline = time.monotonic() + delay
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench_results/fault_drill"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    recipe = args.out / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    ref_dir, drill_dir = args.out / "reference", args.out / "drill"

    t0 = time.monotonic()
    ref = distill("run", str(recipe), "--out", str(ref_dir), "--force", "--quiet")
    _, err = ref.communicate()
    if ref.returncode != 0:
        sys.exit(f"reference run failed:\n{err}")
    wall = time.monotonic() - t0
    reference = json.loads((ref_dir / "metrics.json").read_text())
    train_seconds = sum(r["seconds"] for s in reference["steps"] for r in s["curve"])
    epochs = sum(len(s["curve"]) for s in reference["steps"])
    run = reference["run"]
    cost = run["checkpoint_seconds"] / max(train_seconds, 1e-9)

    modes = ["random", "checkpoint-write", "step-start"]
    rows = []
    proc = distill("run", str(recipe), "--out", str(drill_dir), "--force")
    for k in range(args.kills):
        mode = modes[k % len(modes)]
        at = wait_and_kill(proc, mode, drill_dir, rng.uniform(0.05, 0.3) * train_seconds)
        finished = (drill_dir / "metrics.json").is_file() and \
            json.loads((drill_dir / "metrics.json").read_text())["run"]["status"] == "ok"
        temps = sorted(p.name for p in drill_dir.rglob(".*.tmp")) if drill_dir.is_dir() else []
        rows.append({"kill": k + 1, "mode": mode, "after_s": round(at, 2), "checkpoint": checkpoint_position(drill_dir),
                     "temp_files_left": len(temps), "run_had_finished": finished})
        print(f"kill {k + 1:2d}  {mode:16s} after {at:6.2f}s  checkpoint: {rows[-1]['checkpoint']}"
              f"{'  (run had already finished)' if finished else ''}", flush=True)
        started = (drill_dir / "recipe.yaml").is_file()
        proc = distill("resume", str(drill_dir)) if started else \
            distill("run", str(recipe), "--out", str(drill_dir), "--force")
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"the last resume failed:\n{err}")
    drilled = json.loads((drill_dir / "metrics.json").read_text())
    match = comparable(drilled) == comparable(reference)
    left = sorted(str(p) for p in drill_dir.rglob(".*.tmp"))

    print()
    print("| kill | when | after s | last checkpoint at the kill |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['kill']} | {r['mode']} | {r['after_s']:.1f} | {r['checkpoint']} |")
    print()
    print(f"final metrics equal to the uninterrupted run (timings aside): {'YES' if match else 'NO'}")
    print(f"resumed {len(drilled['run']['resumed'])} times; temporary files left after the last resume: {len(left)}")
    print(f"checkpoint cost: {run['checkpoint_writes']} writes, {run['checkpoint_seconds']:.2f} s over "
          f"{train_seconds:.1f} s of training in {epochs} epochs = {100 * cost:.2f} % (target <= 3 %)")
    result = {"kills": rows, "match": match, "resumed": len(drilled["run"]["resumed"]), "temp_files_left": left,
              "reference_wall_s": wall, "train_seconds": train_seconds, "epochs": epochs,
              "checkpoint_writes": run["checkpoint_writes"], "checkpoint_seconds": run["checkpoint_seconds"],
              "checkpoint_cost": cost, "recipe": RECIPE}
    (args.out / "fault_drill.json").write_text(json.dumps(result, indent=2) + "\n")
    if not match:
        sys.exit(1)


if __name__ == "__main__":
    main()
