"""Numbers as people read them: rounded, with units, and ratios worded by their direction."""

from __future__ import annotations

from typing import Any, Sequence

from distillcli.record import (WIDE_SPREAD, DataInfo, EpochRecord, Measures, RunInfo, RunRecord, StepRecord,
                               teacher_share)

SAME_WITHIN_NOISE = "same within noise"
OTHER_DEVICE = "other device"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def points(delta: float | None) -> str:
    """A top-1 difference in percentage points, signed."""
    if delta is None:
        return "-"
    return "±0.00 pts" if round(delta, 2) == 0 else f"{delta:+.2f} pts"


def ms(v: float | None) -> str:
    """Milliseconds with about three significant digits."""
    if v is None:
        return "-"
    for limit, fmt in ((100, "{:.0f}"), (10, "{:.1f}"), (1, "{:.2f}")):
        if v >= limit:
            return fmt.format(v) + " ms"
    return f"{v:.3f} ms"


def _times(r: float) -> str:
    return f"{r:.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def ratio(base: float | None, value: float | None, less: str, more: str) -> str:
    """How ``value`` compares with ``base``, always as a factor >= 1: '2.00x smaller', '1.50x larger'.
    ``less`` words a value below the base, ``more`` one above it."""
    if base is None or value is None or base <= 0 or value <= 0:
        return "-"
    if round(base / value, 2) == 1 or round(value / base, 2) == 1:
        return "same"
    return f"{_times(base / value)} {less}" if value < base else f"{_times(value / base)} {more}"


def size_ratio(base: float | None, value: float | None) -> str:
    return ratio(base, value, "smaller", "larger")


def speed_ratio(base_ms: float | None, value_ms: float | None) -> str:
    return ratio(base_ms, value_ms, "faster", "slower")


def within_noise(base: Measures, value: Measures, batch: str) -> bool:
    """Whether two median latencies at ``batch`` differ by no more than their spread (half of each
    interquartile range on either side of its median: the ranges overlap): neither a speed-up nor a
    slow-down. The one rule report.md and report.html word latency differences by."""
    a, b = base.latency_ms.get(batch), value.latency_ms.get(batch)
    if a is None or b is None:
        return False
    return abs(a - b) <= (base.latency_iqr_ms.get(batch, 0.0) + value.latency_iqr_ms.get(batch, 0.0)) / 2


def device_kind(device: str | None) -> str | None:
    """cuda:0 -> cuda."""
    return None if device is None else device.split(":")[0]


def same_device(a: Measures, b: Measures) -> bool:
    """Whether two models computed on the same kind of device (unknown counts as the same): a GPU's
    time against a CPU's says nothing about either model."""
    return None in (device_kind(a.device), device_kind(b.device)) or device_kind(a.device) == device_kind(b.device)


def device_mark(m: Measures, run: RunInfo) -> str:
    """What follows a latency measured on another kind of device than the run's, e.g. ' [cpu]'."""
    kind = device_kind(m.device)
    return f" [{kind}]" if kind is not None and kind != device_kind(run.device) else ""


def device_note(record: RunRecord) -> str | None:
    """One sentence naming the steps whose model computed elsewhere than the run's device (a .pt2
    program on the CPU in a CUDA run), with what ran them; None when every step ran on it."""
    run = record.run
    off = [s for s in record.steps if device_mark(s.measures, run)]
    if not off:
        return None
    where = "; ".join(f"step {s.index} ({s.kind}) on {s.measures.device}"
                      + (f" ({s.measures.runtime})" if s.measures.runtime else "") for s in off)
    hint = " (onnxruntime-gpu in place of onnxruntime runs ONNX files on the GPU)" \
        if any((s.measures.runtime or "").endswith("CPUExecutionProvider") for s in off) else ""
    return (f"Not on the run's device ({run.device}): {where}{hint}. its latencies are that device's, and "
            "no speed-up is given across devices.")


def spread(m: Measures, batch: str) -> str:
    """What follows a median latency: its interquartile range, and \u26a0 when that is too wide to trust."""
    iqr = m.latency_iqr_ms.get(batch)
    return (f" ±{iqr:.2f}" if iqr is not None else "") + (" \u26a0" if batch in m.wide_latency() else "")


def latency_note(run: RunInfo) -> str:
    return (f"Latency: median ± interquartile range over the timed passes; \u26a0 marks a spread over "
            f"{WIDE_SPREAD:.0%} of the median (busy cores: compare such figures with care); a difference within "
            f"the spread is '{SAME_WITHIN_NOISE}'. Machine load at the start: {pct(run.load_average)} on "
            f"{run.cpu_count or '?'} cores.")


def held_from(data: DataInfo) -> str:
    """The split the validation split is held out of, in words."""
    return "training" if data.val_from == "train" else "test"


def measured_on(data: DataInfo) -> str:
    """The split the steps' measures were taken on, with its size."""
    if data.measured_on == "val":
        return f"the validation split ({data.val_samples} {held_from(data)} images data.val_split holds out)"
    return f"the test split ({data.test_samples} images)"


def best_text(s: StepRecord) -> str:
    """A step's best epoch (chosen on the validation split) with its val and test top-1; '-' without one."""
    b = s.best
    return "-" if b is None else f"{b.epoch} (val {b.val_top1:.2f}, test {pct(b.test_top1)})"


def fewer_ratio(base: float | None, value: float | None) -> str:
    return ratio(base, value, "fewer", "more")


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def training_note(curve: Sequence[EpochRecord]) -> str:
    """A step's training loops in a few words: throughput, precision, compile, the teacher's share."""
    seconds = sum(r.seconds for r in curve)
    if not curve or seconds <= 0:
        return ""
    parts = [f"{sum(r.images_per_s * r.seconds for r in curve) / seconds:,.0f} images/s",
             "/".join(sorted({r.precision for r in curve}))]
    if any(r.compiled for r in curve):
        parts.append("compiled")
    share = teacher_share(list(curve))
    if share is not None:
        parts.append(f"teacher {100 * share:.0f} % of the time")
    return ", ".join(parts)


def _plain(v: object) -> str:
    """Numbers rounded for people (0.28212890625 -> 0.2821)."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _fact(value: Any) -> str | None:
    """A fact as text: a scalar, or a list of scalars (layer names, ratios) joined, the first twelve;
    None for nested ones (per-layer tables stay in metrics.json)."""
    if not isinstance(value, (list, dict, tuple)):
        return _plain(value)
    if isinstance(value, list) and value and all(isinstance(v, (str, int, float)) for v in value):
        more = f" (+{len(value) - 12} more)" if len(value) > 12 else ""
        return ", ".join(_plain(v) for v in value[:12]) + more
    return None


def step_facts(s: StepRecord) -> list[tuple[str, str]]:
    """What a step recorded about itself (its ``info``), as (name, text) pairs for the reports."""
    facts = s.info.model_dump(exclude={"step"}, exclude_none=True) if s.info is not None else {}
    return [(k, text) for k, v in facts.items() if (text := _fact(v)) is not None]
