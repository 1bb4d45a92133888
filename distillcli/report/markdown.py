"""report.md: one table, a row per step, deltas against the teacher."""

from __future__ import annotations

from typing import Any


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


def _ratio(base: float | None, value: float | None) -> str:
    if not base or not value:
        return "-"
    return f"{base / value:.2f}x"


def render(metrics: dict[str, Any]) -> str:
    run = metrics["run"]
    teacher = metrics.get("teacher")
    for step in metrics["steps"]:
        if step["target"] == "teacher":
            teacher = step["measures"]
    baseline_name = "the teacher"
    if teacher is None and metrics["steps"]:  # no teacher: compare against the first step's model
        teacher, baseline_name = metrics["steps"][0]["measures"], f"step 0 ({metrics['steps'][0]['kind']})"
    batches = sorted({int(b) for s in metrics["steps"] for b in s["measures"].get("latency_ms", {})})
    lines = [
        f"# {run['name']}",
        "",
        f"status **{run['status']}** · device {run['device']} · seed {run['seed']} · {run.get('threads')} threads"
        f" · {run.get('seconds', 0):.0f} s · torch {run['versions'].get('torch')}",
        "",
    ]
    if run.get("error"):
        lines += [f"> failed: {run['error']}", ""]
    head = ["#", "step", "model", "top-1 %", "Δ top-1", "top-5 %", "params", "MACs", "file"]
    head += [f"ms b{b}" for b in batches] + ["speed-up b" + str(batches[-1]) if batches else "speed-up", "best epoch", "time s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    t = teacher or {}
    for s in metrics["steps"]:
        m = s["measures"]
        delta = None if m.get("top1") is None or t.get("top1") is None else m["top1"] - t["top1"]
        lat = m.get("latency_ms", {})
        best = s.get("best")
        row = [str(s["index"]), s["kind"], s["target"], _num(m.get("top1")), _num(delta, "{:+.2f}"),
               _num(m.get("top5")), human_count(m.get("params")), human_count(m.get("macs")),
               human_bytes(m.get("file_bytes"))]
        row += [_num(lat.get(str(b))) for b in batches]
        last = str(batches[-1]) if batches else None
        row.append(_ratio(t.get("latency_ms", {}).get(last), lat.get(last)) if last else "-")
        row.append(f"{best['epoch']} ({best['val_top1']:.2f})" if best else "-")
        row.append(f"{s['seconds']:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    if teacher:
        lines += ["", f"Deltas and speed-up are against {baseline_name} (top-1 {_num(teacher.get('top1'))} %, "
                      f"{human_count(teacher.get('params'))} params, {human_count(teacher.get('macs'))} MACs)."]
    for s in metrics["steps"]:
        if s.get("info"):
            lines += ["", f"## step {s['index']}: {s['kind']}", ""]
            lines += [f"- {k}: {v}" for k, v in s["info"].items() if not isinstance(v, (list, dict))]
    return "\n".join(lines) + "\n"
