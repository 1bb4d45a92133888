"""Benchmark: how fast one 3x3 convolution runs per MAC at the channel widths pruning leaves.

    python scripts/bench_conv_widths.py [--threads 2] [--out bench_results/conv_widths.json]

A pruned layer is only as much faster as its MACs say if the kernel runs the thinner shape as
efficiently as the dense one. This times a single fp32 3x3 convolution (stride 1, padding 1,
as many outputs as inputs, batch 64, no bias) at ResNet-56's dense widths and the widths
``distill prune --sparsity 0.5`` leaves them with (round_to 8 and 16), in channels_last and
NCHW, the two layouts alternating per round (each a median of ``distillcli.measure.latency_stats``),
and prints GMAC/s (median over rounds, with the range), with the allocator setting ``distill`` uses. The widths are (channels, spatial size): CIFAR ResNet stages 1-3 are 32x32, 16x16, 8x8.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from torch import nn

from distillcli.allocator import keep_freed_memory
from distillcli.measure import latency_stats

SHAPES = [(16, 32), (8, 32), (32, 16), (24, 16), (16, 16), (64, 8), (40, 8), (32, 8)]  # per stage: dense, auto (8), 16
LAYOUTS = {"channels_last": torch.channels_last, "NCHW": torch.contiguous_format}


def call_ms(channels: int, size: int, layout: torch.memory_format) -> float:
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(memory_format=layout)
    return latency_stats(conv, (channels, size, size), 64, channels_last=layout is torch.channels_last)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench_results/conv_widths.json"))
    args = parser.parse_args()
    keep_freed_memory()  # as `distill` runs
    torch.set_num_threads(args.threads)
    samples: dict[tuple[int, int, str], list[float]] = {(c, s, name): [] for c, s in SHAPES for name in LAYOUTS}
    for _ in range(args.rounds):
        for c, s in SHAPES:
            for name, layout in LAYOUTS.items():
                samples[(c, s, name)].append(call_ms(c, s, layout))
    rows = []
    for (c, s, name), ms in samples.items():
        gmacs = [64 * c * c * 9 * s * s / (m / 1000) / 1e9 for m in ms]
        rows.append({"channels": c, "size": s, "layout": name, "ms": statistics.median(ms),
                     "gmac_s": statistics.median(gmacs), "gmac_s_range": [min(gmacs), max(gmacs)]})
    print(f"one 3x3 conv, batch 64, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}\n")
    print("| channels | size | " + " | ".join(f"{n} ms | {n} GMAC/s (range)" for n in LAYOUTS) + " |")
    print("|---|---|" + "---|---|" * len(LAYOUTS))
    for c, s in SHAPES:
        cells = []
        for name in LAYOUTS:
            r = next(r for r in rows if (r["channels"], r["size"], r["layout"]) == (c, s, name))
            low, high = r["gmac_s_range"]
            cells.append(f"{r['ms']:.2f} | {r['gmac_s']:.0f} ({low:.0f}-{high:.0f})")
        print(f"| {c} | {s}x{s} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__,
                                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "rows": rows}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
