"""report.md: one table, a row per step, deltas against the run's baseline (record.py decides it)."""

from __future__ import annotations

from distillcli.record import WIDE_SPREAD, Measures, RunRecord, StepRecord
from distillcli.report.numbers import training_note


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


def _plain(v: object) -> str:
    """Numbers rounded for people (0.28212890625 -> 0.2821)."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _ratio(base: float | None, value: float | None) -> str:
    if not base or not value:
        return "-"
    return f"{base / value:.2f}x"


def _latency(m: Measures, batch: str, wide: list[str]) -> str:
    ms = m.latency_ms.get(batch)
    if ms is None:
        return "-"
    iqr = m.latency_iqr_ms.get(batch)
    return f"{ms:.2f}" + (f" ±{iqr:.2f}" if iqr is not None else "") + (" \u26a0" if batch in wide else "")


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


_SPLITS = {"val_split": "val split", "test": "test"}


def _best(s: StepRecord) -> str:
    """The best epoch and the split it was picked on (the curve's rows all name the same one)."""
    if s.best is None:
        return "-"
    split = next((r.split for r in s.curve if r.epoch == s.best.epoch), "test")
    return f"{s.best.epoch} ({s.best.val_top1:.2f}, {_SPLITS[split]})"


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
    head += [f"ms b{b}" for b in batches] + ["speed-up b" + str(batches[-1]) if batches else "speed-up", "best epoch", "training", "time s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in record.steps:
        m = s.measures
        delta = None if m.top1 is None or t.top1 is None else m.top1 - t.top1
        row = [str(s.index), s.kind, s.target, _num(m.top1), _num(delta, "{:+.2f}"), _num(m.top5),
               human_count(m.params), human_count(m.macs), human_bytes(m.file_bytes)]
        wide = m.wide_latency()
        row += [_latency(m, str(b), wide) for b in batches]
        last = str(batches[-1]) if batches else None
        row.append(_ratio(t.latency_ms.get(last), m.latency_ms.get(last)) if last else "-")
        row.append(_best(s))
        row.append(training_note(s.curve) or "-")
        row.append(f"{s.seconds + s.measure_seconds:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    d = record.data
    held = f" (val split: the {d.select_samples} training images data.val_split holds out)" if d.select_samples else ""
    lines += ["", f"Top-1 and top-5 are each step's final model, measured on the test split ({d.val_samples} "
                  f"images). Best epoch: the epoch of highest top-1 on the split named{held}, for information; "
                  "the model kept is the last epoch's."]
    if base is not None:
        lines += ["", f"Deltas and speed-up are against {base.label} (top-1 {_num(t.top1)} %, "
                      f"{human_count(t.params)} params, {human_count(t.macs)} MACs)."]
    if record.teachers:
        lines += ["", "The teachers alone (the distilling steps learn from the weighted mean of their logits):", ""]
        lines += [f"- teacher[{m.index}] {m.arch}, weight {m.weight:.3g}: top-1 {_num(m.measures.top1)} %, "
                  f"{human_count(m.measures.params)} params, {human_count(m.measures.macs)} MACs ({m.checkpoint})"
                  for m in record.teachers]
    if batches:
        lines += ["", f"Latency: median ± interquartile range over the timed passes; \u26a0 marks a spread over "
                      f"{WIDE_SPREAD:.0%} of the median (busy cores: compare such figures with care). "
                      f"Machine load at the start: {_num(run.load_average)} on {run.cpu_count or '?'} cores."]
    cache = [line for line in map(teacher_cache_line, record.steps) if line]
    if cache:
        lines += ["", "Teacher outputs: " + "; ".join(cache) + "."]
    for s in record.steps:
        if s.info:
            lines += ["", f"## step {s.index}: {s.kind}", ""]
            lines += [f"- {k}: {_plain(v)}" for k, v in s.info.items() if not isinstance(v, (list, dict))]
    return "\n".join(lines) + "\n"
