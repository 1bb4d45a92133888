"""A finished run's model files where users meet them: each loaded by the package's loader in its
own fresh process, its top-1 on the test split of the data it records, and its latency at batch 64
timed round after round in turn with the others (speed-ups against the run's first model, per
round: median and range). What docs/benchmarks.md quotes for a whole recipe, e.g. the flagship:

    python scripts/bench_run.py runs/vgg16-cifar10-cpu-<time> --data-root ../shared/data/cifar10 \\
        --out bench_results/flagship_files.json

Run it on a quiet machine: the timings are ratios within one run, and a second busy process on the
same cores slows torch several times over.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from file_timing import time_files, timing_row  # scripts/, the folder this script runs from

from distillcli.machine import this_machine
from distillcli.report import load_record


def run_files(run_dir: Path) -> list[tuple[str, Path]]:
    """(label, model file): a starting model the run kept unchanged (models/start-*.pt: a loaded
    teacher no step trained), then each step's file, in the run's order."""
    record = load_record(run_dir)
    start = [(f"start [{p.stem.removeprefix('start-')}]", p) for p in sorted((run_dir / "models").glob("start-*.pt"))]
    return start + [(f"{s.index} {s.kind} [{s.target}]", run_dir / s.model_file) for s in record.steps
                    if s.model_file and (run_dir / s.model_file).is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-root", required=True, help="where the run's dataset is (its files' data section)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    files = run_files(args.run_dir)
    if not files:
        sys.exit(f"{args.run_dir} holds no model files (is it a finished run directory?)")
    machine = this_machine()
    print(f"{machine.isa_text()}, {args.threads} threads; {len(files)} files, each in a fresh process", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        timings = time_files([(label, path, {}) for label, path in files], 64, args.rounds, 5, args.threads,
                             Path(cache), ["--data-root", str(args.data_root)],
                             log=lambda text: print(f"  {text}", flush=True))
    rows = [timing_row(timings[0], t) for t in timings]
    print(f"\n| model file | top-1 % | ms at b64 (IQR) | speed-up vs {rows[0]['label']} (range) | first load s |")
    print("|---|---|---|---|---|")
    for r in rows:
        low, high = r["speedup_range"]
        print(f"| {r['label']} `{Path(r['path']).name}` | {r['top1']:.2f} | {r['ms']:.1f} ({r['iqr_ms']:.1f}) | "
              f"{r['speedup']:.2f}x ({low:.2f}-{high:.2f}) | {r['first_load_s']:.1f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"run_dir": str(args.run_dir), "machine": machine.to_dict(),
                                        "threads": args.threads, "rows": rows}, indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
