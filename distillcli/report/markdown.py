"""report.md: one table, a row per step, deltas against the run's baseline (record.py decides it)."""

from __future__ import annotations

from distillcli.record import Measures, RunInfo, RunRecord, StepRecord
from distillcli.report.numbers import (OTHER_DEVICE, SAME_WITHIN_NOISE, best_text, device_mark, device_note, latency_note,
                                       measured_on, same_device, spread, step_facts, training_note, within_noise)


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def human_count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _speedup(base: Measures, m: Measures, batch: str) -> str:
    before, after = base.latency_ms.get(batch), m.latency_ms.get(batch)
    if not before or not after:
        return "-"
    if not same_device(base, m):
        return OTHER_DEVICE
    return SAME_WITHIN_NOISE if within_noise(base, m, batch) else f"{before / after:.2f}x"


def _latency(m: Measures, batch: str, run: RunInfo) -> str:
    ms = m.latency_ms.get(batch)
    return "-" if ms is None else f"{ms:.2f}" + spread(m, batch) + device_mark(m, run)


def teacher_cache_line(s: StepRecord) -> str | None:
    """One line on where a distilling step's teacher outputs came from (None for other steps)."""
    c = s.teacher_cache
    if c is None:
        return None
    share = f"; the teacher took {c.teacher_seconds / s.seconds:.0%} of the step's time" \
        if c.teacher_seconds is not None and s.seconds else ""
    if c.key is None:
        return f"step {s.index} ({s.kind}) computed them every batch (teacher_cache: {c.mode}){share}"
    return (f"step {s.index} ({s.kind}) read {c.hits} epoch(s) from the store and computed {c.misses}; "
            f"{human_bytes(c.disk_bytes)} on disk (key {c.key[:12]}){share}")


def render(record: RunRecord) -> str:
    run, base = record.run, record.baseline
    t = base.measures if base is not None else Measures()
    batches = sorted({int(b) for s in record.steps for b in s.measures.latency_ms})
    lines = [
        f"# {run.name}",
        "",
        f"status **{run.status}** · device {run.device} · seed {run.seed} · {run.threads} threads"
        + (f" · {run.world_size} processes" if run.world_size > 1 else "")
        + f" · {run.seconds:.0f} s · torch {run.versions.get('torch')}"
        + (f" · {run.machine.describe()}" if run.machine else ""),
        "",
    ]
    if run.error:
        lines += [f"> {run.status}: {run.error}", ""]
    head = ["#", "step", "model", "top-1 %", "Δ top-1", "top-5 %", "params", "MACs", "file"]
    chosen = any(s.best is not None for s in record.steps)  # only on a validation split: never on the test split
    head += [f"ms b{b}" for b in batches] + ["speed-up b" + str(batches[-1]) if batches else "speed-up"]
    head += (["best epoch"] if chosen else []) + ["training", "time s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in record.steps:
        m = s.measures
        delta = None if m.top1 is None or t.top1 is None else m.top1 - t.top1
        row = [str(s.index), s.kind, s.target, _num(m.top1), _num(delta, "{:+.2f}"), _num(m.top5),
               human_count(m.params), human_count(m.macs), human_bytes(m.file_bytes)]
        row += [_latency(m, str(b), run) for b in batches]
        row.append(_speedup(t, m, str(batches[-1])) if batches else "-")
        row += [best_text(s)] if chosen else []
        row.append(training_note(s.curve) or "-")
        row.append(f"{s.seconds + s.measure_seconds:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    d = record.data
    lines += ["", f"Top-1 and top-5 are each step's final model, measured on {measured_on(d)}."]
    if chosen:
        lines[-1] += (f" Best epoch: the epoch of highest top-1 on the validation split ({d.val_samples} training "
                      "images data.val_split holds out), with its val and test top-1, for information; the model "
                      "kept is the last epoch's.")
    if base is not None:
        lines += ["", f"Deltas and speed-up are against {base.label} (top-1 {_num(t.top1)} %, "
                      f"{human_count(t.params)} params, {human_count(t.macs)} MACs)."]
    if record.teachers:
        lines += ["", "The teachers alone (the distilling steps learn from the weighted mean of their logits):", ""]
        lines += [f"- teacher[{m.index}] {m.arch}, weight {m.weight:.3g}: top-1 {_num(m.measures.top1)} %, "
                  f"{human_count(m.measures.params)} params, {human_count(m.measures.macs)} MACs ({m.checkpoint})"
                  for m in record.teachers]
    if batches:
        lines += ["", latency_note(run)] + (["", note] if (note := device_note(record)) else [])
    cache = [line for line in map(teacher_cache_line, record.steps) if line]
    if cache:
        lines += ["", "Teacher outputs: " + "; ".join(cache) + "."]
    for s in record.steps:
        if s.info is not None or s.warnings:
            lines += ["", f"## step {s.index}: {s.kind}", ""]
            lines += [f"- {k}: {v}" for k, v in step_facts(s)]
            lines += [f"- warning: {w}" for w in s.warnings]
    return "\n".join(lines) + "\n"
