"""Where a model file's time goes: its operators, each with its input shapes, profiled after
loading the file as ``distill eval`` does (compiled programs compile first).

    python scripts/profile_file.py MODEL.pt2 [--batch 64] [--calls 10] [--top 25] [--out prof.json]

A per-layer view of what a latency figure hides: which convolutions dominate, whether thin
(pruned) layers really run in less time, and how much goes outside the kernels. Times are CPU
self times per call (the mean over ``--calls`` profiled calls, after warm-up), so rows add up to
the profiled call, which carries the profiler's own overhead (compare ``ms per call``, timed
without it). Run it with nothing else on the cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from distillcli.machine import this_machine
from file_timing import load_as_users_do  # scripts/, the folder this script runs from


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=25, help="rows printed (the JSON has all)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from torch.profiler import ProfilerActivity, profile

    loaded, module, x = load_as_users_do(args.path, args.batch, args.threads)
    if not isinstance(module, torch.nn.Module):
        raise SystemExit(f"{args.path}: torch's profiler sees torch models only (.pt, .pt2, .aoti), not onnxruntime")
    with torch.no_grad():
        for _ in range(5):  # the first call compiles a program
            module(x)
        t0 = time.perf_counter()
        for _ in range(args.calls):
            module(x)
        ms = (time.perf_counter() - t0) / args.calls * 1000
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(args.calls):
                module(x)
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    rows = [{"op": e.key, "calls": e.count // args.calls, "ms": e.self_cpu_time_total / args.calls / 1000,
             "input_shapes": [s for s in e.input_shapes if s]} for e in events]
    total = sum(r["ms"] for r in rows)
    print(f"{args.path} ({loaded.handle.format}), batch {args.batch}, {args.threads} threads, "
          f"{this_machine().isa_text()}: {ms:.2f} ms per call; profiled {total:.2f} ms\n")
    print("| ms per call | share | calls | operator | input shapes |\n|---|---|---|---|---|")
    for r in rows[:args.top]:
        shapes = ", ".join("x".join(map(str, s)) for s in r["input_shapes"][:2])
        print(f"| {r['ms']:.3f} | {100 * r['ms'] / total:.1f} % | {r['calls']} | {r['op']} | {shapes} |")
    if args.out:
        args.out.write_text(json.dumps({"file": str(args.path), "batch": args.batch, "threads": args.threads,
                                        "machine": this_machine().to_dict(), "ms_per_call": ms,
                                        "rows": rows}, indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
