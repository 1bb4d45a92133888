"""Benchmark: which channel multiple the CPU's fp32 (or int8) convolutions want, the table behind
pruning's ``round_to: auto``.

    python scripts/bench_conv_widths.py [--threads 2] [--out bench_results/conv_widths.json]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python scripts/bench_conv_widths.py \
        --out bench_results/conv_widths_avx2.json      # what an AVX2 machine does, on this one
    python scripts/bench_conv_widths.py --precision int8 --out bench_results/conv_widths_int8.json
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI python scripts/bench_conv_widths.py --precision int8 ...  # VNNI, no AMX

A pruned layer is only as much faster as its MACs say if the kernel runs the thinner shape as
efficiently as the dense one. This times a single fp32 3x3 convolution (stride 1, padding 1, as
many outputs as inputs, batch 64, no bias, channels_last as recipes run) at every width from 8 to
96 channels in steps of 4, at 32x32 and 16x16 (CIFAR ResNet stages 1-2), round after round with
the allocator setting ``distill`` uses, and prints GMAC/s (median over rounds, with the range).
``--precision int8`` times three conv + BatchNorm + ReLU layers instead (so each convolution reads
and writes int8, as inside a network), quantized for this machine by the quantize step's own code
and compiled as a loaded ``.pt2`` program is; GMAC/s counts all three.

The narrowest multiple: ``round_to`` halves its multiple m for thin layers (down to 8). The
table's ``time at m/2 over time at m`` (median over sizes) says whether that buys time: at
``--keep`` or above, a width of m/2 runs about as long as m, halving only costs accuracy, and the
multiple printed is also the narrowest (else 8).

The multiple: a width off the 2m grid (24 for m = 8: a multiple of 8, not of 16) is compared with
the mean GMAC/s of its two neighbours on that grid (16 and 32). Widths on the m grid are "fast"
when they keep at least ``--keep`` (0.9) of that, the median over widths and sizes; the multiple
printed is the smallest m from 4, 8, 16 whose grid and every coarser one are fast, i.e. rounding
finer than it costs speed and rounding coarser gains nothing. The JSON records the machine
(distillcli.machine), so each table names the ISA it was measured on.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from torch import nn

from distillcli.allocator import keep_freed_memory
from distillcli.machine import this_machine
from distillcli.measure import latency_stats

WIDTHS = range(8, 100, 4)
SIZES = (32, 16)
MULTIPLES = (4, 8, 16)


def gmac_s(channels: int, size: int, ms: float) -> float:
    return 64 * channels * channels * 9 * size * size / (ms / 1000) / 1e9


def fp32_conv(channels: int, size: int) -> nn.Module:
    return nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(memory_format=torch.channels_last)


def int8_convs(channels: int, size: int) -> nn.Module:
    """Three int8 conv + BN + ReLU layers as the quantize step makes them for this machine, compiled."""
    from distillcli.compress.quantization.pt2e import calibrate, convert, prepare
    from distillcli.modelfile.program import ProgramModule

    layers: list[nn.Module] = []
    for _ in range(LAYERS["int8"]):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]
    model = nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)
    example = torch.rand(64, channels, size, size).contiguous(memory_format=torch.channels_last)
    prepared = prepare(model, "static", example)
    calibrate(prepared, [(example, example, example)], 1)
    program = ProgramModule(convert(prepared, example), compiled=True)
    program(example)  # compiles
    return program


LAYERS = {"fp32": 1, "int8": 3}


def call_ms(model: nn.Module, channels: int, size: int) -> float:
    return latency_stats(model, (channels, size, size), 64, channels_last=True)[0]


def scan(shapes: list[tuple[int, int]], precision: str, rounds: int) -> dict[tuple[int, int], list[float]]:
    """``rounds`` timings (ms per call) of each shape. Float convolutions alternate the shapes round
    after round, so that load from elsewhere falls on all alike; compiled int8 programs are timed
    one after another: dynamo keeps one cache per code object, and alternating dozens of programs
    runs past its recompile limit into the uncompiled path (about 10x slower)."""
    if precision == "fp32":
        models = {shape: fp32_conv(*shape) for shape in shapes}
        samples: dict[tuple[int, int], list[float]] = {shape: [] for shape in shapes}
        for _ in range(rounds):
            for c, s in shapes:
                samples[(c, s)].append(call_ms(models[(c, s)], c, s))
        return samples
    samples = {}
    for c, s in shapes:
        program = int8_convs(c, s)
        samples[(c, s)] = [call_ms(program, c, s) for _ in range(rounds)]
        torch._dynamo.reset()
    return samples


def halving_ratio(ms: dict[int, float], m: int) -> float | None:
    """Time at width m/2 over time at width m (None when either was not measured)."""
    return ms[m // 2] / ms[m] if m // 2 in ms and m in ms else None


def off_grid_ratios(speed: dict[int, float], m: int) -> list[float]:
    """GMAC/s of each width on the m grid but off the 2m grid, over the mean of its two 2m neighbours."""
    return [speed[w] / ((speed[w - m] + speed[w + m]) / 2)
            for w in speed if w % m == 0 and w % (2 * m) and w - m in speed and w + m in speed]


def fast_multiple(ratios: dict[int, float], keep: float) -> int:
    """The smallest multiple whose grid, and every coarser one measured, keeps ``keep`` of the speed."""
    for m in MULTIPLES:
        if all(ratios[k] >= keep for k in MULTIPLES if k >= m):
            return m
    return 2 * MULTIPLES[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=sorted(LAYERS), default="fp32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.9, help="share of the coarser grid's speed a grid must keep")
    parser.add_argument("--out", type=Path, default=Path("bench_results/conv_widths.json"))
    args = parser.parse_args()
    keep_freed_memory()  # as `distill` runs
    torch.set_num_threads(args.threads)
    shapes = [(c, s) for s in SIZES for c in WIDTHS if s == 16 or c <= 64]
    samples = scan(shapes, args.precision, args.rounds)
    layers = LAYERS[args.precision]
    rates = {shape: [layers * gmac_s(*shape, ms) for ms in times] for shape, times in samples.items()}
    speed = {shape: statistics.median(r) for shape, r in rates.items()}
    ratios = {m: statistics.median(r for s in SIZES for r in off_grid_ratios(
        {c: v for (c, size), v in speed.items() if size == s}, m)) for m in MULTIPLES}
    chosen = fast_multiple(ratios, args.keep)
    ms_at = {s: {c: statistics.median(samples[(c, s)]) for c in WIDTHS if (c, s) in samples} for s in SIZES}
    halvings = {m: [h for s in SIZES if (h := halving_ratio(ms_at[s], m)) is not None] for m in MULTIPLES}
    halving = {m: statistics.median(h) for m, h in halvings.items() if h}
    machine = this_machine()
    what = "one 3x3 conv, fp32" if layers == 1 else f"{layers} 3x3 conv + BN + ReLU, {args.precision}"
    print(f"{what}, batch 64, channels_last, {args.threads} threads, {machine.isa_text()} "
          f"(ATen {machine.isa}), oneDNN {machine.onednn}\n")
    print("| channels | " + " | ".join(f"{s}x{s} GMAC/s (range)" for s in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for c in WIDTHS:
        cells = []
        for s in SIZES:
            g = rates.get((c, s))
            cells.append(f"{statistics.median(g):.0f} ({min(g):.0f}-{max(g):.0f})" if g else "-")
        print(f"| {c} | " + " | ".join(cells) + " |")
    print("\n| grid | GMAC/s of its off-grid widths over their coarser neighbours (median) |\n|---|---|")
    for m, r in ratios.items():
        print(f"| {m} | {r:.2f} |")
    print("\n| m | time at m/2 over time at m (median over sizes) |\n|---|---|")
    for m, h in halving.items():
        print(f"| {m} | {h:.2f} |")
    narrowest = chosen if chosen > 8 and halving.get(chosen, 0.0) >= args.keep else min(chosen, 8)
    print(f"\nfast multiple on this machine: {chosen} (keeping >= {args.keep:g} of the coarser grid's speed); "
          f"narrowest: {narrowest}")
    rows = [{"channels": c, "size": s, "ms": statistics.median(samples[(c, s)]), "gmac_s": speed[(c, s)],
             "gmac_s_range": [min(rates[(c, s)]), max(rates[(c, s)])]} for c, s in shapes]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"precision": args.precision, "threads": args.threads, "rounds": args.rounds,
                                    "machine": machine.to_dict(), "off_grid_ratio": ratios, "keep": args.keep,
                                    "fast_multiple": chosen, "halving_time_ratio": halving, "narrowest": narrowest,
                                    "rows": rows},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
