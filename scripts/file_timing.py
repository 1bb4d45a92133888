"""Model files timed where users meet them: each loaded in its own fresh Python process.

A number measured in the process that made a model can flatter it (an int8 program once ran
2.5x slower after a reload than in the process that quantized it). So every file gets a
worker process that loads it with the package's own loader and allocator setting, as
``distill eval`` does (without it, glibc page-faults large activation buffers back in on every
call: ResNet-56 eager at batch 64 ran 78 ms instead of 54 ms, a pruned copy 36 ms either way), and
records its first-load cost (import + load + first call, which includes compiling); then
the parent asks the workers in turn for a few timed calls, round after round, so that load
from other processes falls on every file alike. A second worker per file, started on the
same inductor cache, gives the cost of a later load.

    python scripts/file_timing.py worker FILE --batch 64   # what the parent starts
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from distillcli.allocator import keep_freed_memory

_STARTED = time.perf_counter()


@dataclass
class FileTiming:
    path: str
    label: str
    first_load_s: float  # fresh process: imports, load, first call (compile) on a cold cache
    later_load_s: float | None = None  # the same in a second process, caches warm
    top1: float | None = None
    samples_ms: list[float] = field(default_factory=list)  # one median per round

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def iqr_ms(self) -> float:
        if len(self.samples_ms) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples_ms, n=4, method="inclusive")
        return q3 - q1


def ratio_spread(base: FileTiming, other: FileTiming) -> tuple[float, float, float]:
    """(median, min, max) of base/other per round: rounds pair the two files in time."""
    ratios = [b / o for b, o in zip(base.samples_ms, other.samples_ms)]
    return statistics.median(ratios), min(ratios), max(ratios)


def distill_eval(path: Path | str, *args: str) -> dict[str, Any]:
    """``distill eval PATH ARGS --json`` as a user runs it (its own process): the measures it printed."""
    proc = subprocess.run([sys.executable, "-m", "distillcli", "eval", str(path), "--json", *args],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)["measures"]


def timing_row(base: FileTiming, timing: FileTiming) -> dict[str, Any]:
    """A file's timing as the benchmarks report it, with its speed-up against ``base`` (per round: median, range)."""
    speedup, low, high = ratio_spread(base, timing)
    return {"label": timing.label, "path": timing.path, "top1": timing.top1, "ms": timing.median_ms,
            "iqr_ms": timing.iqr_ms, "rounds_ms": timing.samples_ms, "speedup": speedup, "speedup_range": [low, high],
            "first_load_s": timing.first_load_s, "later_load_s": timing.later_load_s}


class _Worker:
    def __init__(self, path: Path, batch: int, threads: int, env: dict[str, str], evaluate: Sequence[str]) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "worker", str(path), "--batch", str(batch),
               "--threads", str(threads), *evaluate]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **env})
        self.ready = self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the timing worker for {self.proc.args[4]} exited ({self.proc.wait()})")
        return json.loads(line)

    def time(self, calls: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{calls}\n")
        self.proc.stdin.flush()
        return float(self._reply()["median_ms"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def time_files(files: Sequence[tuple[str, Path, dict[str, str]]], batch: int = 64, rounds: int = 7,
               calls: int = 5, threads: int = 2, cache_dir: Path | None = None,
               evaluate: Sequence[str] = (), settle_s: float = 0.3,
               log: Callable[[str], None] = lambda text: None) -> list[FileTiming]:
    """Time ``files`` ((label, path, extra environment) each) at ``batch`` in fresh processes.

    Workers start one after another (so compiles do not overlap) on ``cache_dir`` as the
    inductor cache (cold when new); each round asks every worker, in a rotating order, for
    the median of ``calls`` calls, with ``settle_s`` between workers so that one's OpenMP
    threads have stopped spinning before the next starts."""
    env_cache = {"TORCHINDUCTOR_CACHE_DIR": str(cache_dir)} if cache_dir is not None else {}
    workers, timings = [], []
    try:
        for label, path, env in files:
            worker = _Worker(path, batch, threads, {**env_cache, **env}, evaluate)
            workers.append(worker)
            timings.append(FileTiming(str(path), label, worker.ready["first_load_s"], top1=worker.ready.get("top1")))
            log(f"{label}: loaded in {worker.ready['first_load_s']:.1f} s")
        for timing, (label, path, env) in zip(timings, files):  # a second fresh load, caches now warm
            again = _Worker(path, batch, threads, {**env_cache, **env}, ())
            timing.later_load_s = again.ready["first_load_s"]
            again.close()
            log(f"{label}: loaded again in {timing.later_load_s:.1f} s")
        for r in range(rounds):
            order = list(range(len(workers)))
            order = order[r % len(order):] + order[:r % len(order)]
            for i in order:
                time.sleep(settle_s)
                timings[i].samples_ms.append(workers[i].time(calls))
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{t.label} {t.samples_ms[-1]:.1f} ms" for t in timings))
    finally:
        for worker in workers:
            worker.close()
    return timings


# ---------------------------------------------------------------- the worker process
def load_as_users_do(path: Path, batch: int, threads: int) -> tuple[Any, Any, Any]:
    """(loaded file, the module to call, an input batch): the file loaded with the package's own
    loader and allocator setting, as `distill eval` does, torch models and inputs channels_last."""
    keep_freed_memory()  # as `distill eval` runs, and the README's deployment snippet advises
    import torch

    from distillcli.modelfile import load_model

    torch.set_num_threads(threads)
    loaded = load_model(path)
    module = loaded.handle.module
    torch_input = isinstance(module, torch.nn.Module)  # onnxruntime takes plain NCHW arrays
    if torch_input and loaded.handle.format == "eager":
        module = module.eval().to(memory_format=torch.channels_last)
    fmt = torch.channels_last if torch_input else torch.contiguous_format
    return loaded, module, torch.rand(batch, *loaded.input_shape).contiguous(memory_format=fmt)


def _worker(args: argparse.Namespace) -> None:
    import torch

    from distillcli.measure import evaluate

    loaded, module, x = load_as_users_do(args.path, args.batch, args.threads)
    torch_input = isinstance(module, torch.nn.Module)
    with torch.no_grad():
        module(x)
    ready: dict[str, Any] = {"first_load_s": time.perf_counter() - _STARTED}
    if args.data_root:
        from distillcli.data import load_data
        from distillcli.data.config import DataConfig

        spec = {**loaded.data, "root": args.data_root, "val_subset": args.val_subset, "eval_batch_size": args.batch}
        data = load_data(DataConfig(**spec), seed=0, channels_last=torch_input)
        with torch.no_grad():
            ready["top1"] = evaluate(module, data.val, data.num_classes)["top1"]
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        times = []
        with torch.no_grad():
            module(x)
            for _ in range(int(line)):
                t0 = time.perf_counter()
                module(x)
                times.append(1000.0 * (time.perf_counter() - t0))
        print(json.dumps({"median_ms": statistics.median(times)}), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python scripts/file_timing.py")
    parser.add_argument("role", choices=["worker"])
    parser.add_argument("path", type=Path)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", help="also measure top-1 on the test split of the file's data, from here")
    parser.add_argument("--val-subset", type=int)
    _worker(parser.parse_args(argv))


if __name__ == "__main__":
    main()
