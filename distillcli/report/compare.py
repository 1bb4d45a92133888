"""`distill compare`: the final student model of several runs side by side, and the best one
whose accuracy stays within a drop of the baseline: the final model of one of the runs (the
first, by default), or with ``teacher`` the best baseline the runs recorded."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Literal

from distillcli.errors import OptionError, RunDirError
from distillcli.record import Measures, RunRecord, StepRecord
from distillcli.report import load_record, plots
from distillcli.report.html import note, page, section, table, td
from distillcli.report.markdown import human_bytes, human_count
from distillcli.report.numbers import device_kind, ms, pct, points

Objective = Literal["latency", "size", "macs"]
OBJECTIVES: tuple[str, ...] = ("latency", "size", "macs")
TEACHER = "teacher"  # --baseline: the best baseline the runs recorded (their teacher or starting model)


@dataclass
class Entry:
    label: str
    run_dir: Path
    record: RunRecord
    step: StepRecord
    cost: float | None = None
    drop: float | None = None
    qualifies: bool = False

    @property
    def measures(self) -> Measures:
        return self.step.measures


@dataclass
class Comparison:
    entries: list[Entry]
    objective: str
    batch: str | None
    max_drop: float
    reference: float | None
    reference_from: str
    best: Entry | None
    baseline: Entry | None = None  # the run whose final model is the reference (None: a recorded baseline)
    timed_in: tuple[str, ...] = ()  # latency: the places the final models were timed in, when more than one

    def cost_name(self) -> str:
        return {"latency": f"latency at batch {self.batch}", "size": "stored size", "macs": "MACs"}[self.objective]

    def axis(self) -> tuple[float, str]:
        """The chart's divisor for the costs, and its label."""
        top = max((e.cost for e in self.entries if e.cost is not None), default=0.0)
        if self.objective == "latency":
            return 1.0, f"latency at batch {self.batch} (ms)"
        if self.objective == "size":
            div, unit = plots.bytes_unit(top)
            return div, f"stored size ({unit})"
        return (1e6, "MACs (millions)") if top >= 1e6 else (1e3, "MACs (thousands)")

    def floor(self) -> float | None:
        return None if self.reference is None else self.reference - self.max_drop


def _labels(run_dirs: list[Path]) -> list[str]:
    names = [d.resolve().name for d in run_dirs]
    return [n if names.count(n) == 1 else f"{n} #{names[:i].count(n) + 1}" for i, n in enumerate(names)]


def _entries(run_dirs: list[Path]) -> list[Entry]:
    entries = []
    for label, run_dir in zip(_labels(run_dirs), run_dirs):
        record = load_record(run_dir)
        step = record.final_step("student")
        if step is None or step.measures.top1 is None:
            raise RunDirError(f"{run_dir} has no measured student model",
                              "compare runs that finished at least one step on the student")
        entries.append(Entry(label, run_dir, record, step))
    return entries


def _baseline_run(entries: list[Entry], baseline: str | None) -> Entry | None:
    """The run ``baseline`` names (a label or a run directory; the first run when None); None for ``teacher``."""
    if baseline is None:
        return entries[0]
    for e in entries:
        if baseline == e.label or Path(baseline).resolve() == e.run_dir.resolve():
            return e
    if baseline == TEACHER:
        return None
    raise OptionError(f"--baseline {baseline!r} is not one of the runs compared",
                      f"give a run's label ({', '.join(e.label for e in entries)}) or directory, or {TEACHER} for "
                      "the best baseline the runs recorded")


def _recorded_reference(entries: list[Entry]) -> tuple[float | None, str]:
    """The best baseline top-1 among the runs (or, when no run has one, the best final top-1)."""
    based = [(e.record.baseline.measures.top1, e) for e in entries
             if e.record.baseline is not None and e.record.baseline.measures.top1 is not None]
    if based:
        top1, e = max(based, key=lambda t: t[0] or 0.0)
        assert e.record.baseline is not None
        return top1, f"{e.record.baseline.label} of {e.label}"
    top1, e = max(((e.measures.top1, e) for e in entries), key=lambda t: t[0] or 0.0)
    return top1, f"the final model of {e.label} (no run has a baseline)"


def timed_where(e: Entry) -> str:
    """Where an entry's final model was timed: the kind of device, on which machine."""
    run = e.record.run
    device = device_kind(e.measures.device or run.device) or run.device
    return device + (f" of {run.machine.describe()}" if run.machine is not None else "")


def _cost(m: Measures, objective: str, batch: str | None) -> float | None:
    if objective == "latency":
        return m.latency_ms.get(batch) if batch is not None else None
    return float(m.file_bytes) if objective == "size" and m.file_bytes else \
        float(m.macs) if objective == "macs" and m.macs else None


def compare_runs(run_dirs: list[Path], max_drop: float, objective: str, baseline: str | None = None) -> Comparison:
    """``baseline``: what --max-drop is measured against (see ``_baseline_run``)."""
    entries = _entries(run_dirs)
    common = set.intersection(*(set(e.measures.latency_ms) for e in entries))
    batch = max(common, key=int) if common else None  # latencies compare only at the same batch size
    base = _baseline_run(entries, baseline)
    reference, source = (base.measures.top1, f"the final model of {base.label}") if base is not None else \
        _recorded_reference(entries)
    for e in entries:
        e.cost = _cost(e.measures, objective, batch)
        e.drop = None if reference is None or e.measures.top1 is None else reference - e.measures.top1
        e.qualifies = e.cost is not None and e.drop is not None and e.drop <= max_drop + 1e-9
    places = tuple(sorted({timed_where(e) for e in entries})) if objective == "latency" else ()
    timed_in = places if len(places) > 1 else ()  # a time on one machine says nothing against one on another
    eligible = [e for e in entries if e.qualifies]
    best = min(eligible, key=lambda e: (e.cost, -(e.measures.top1 or 0.0))) if eligible and not timed_in else None
    return Comparison(entries, objective, batch, max_drop, reference, source, best, base, timed_in)


def verdict(c: Comparison) -> str:
    within = f"within {c.max_drop:g} pts of the baseline top-1 {pct(c.reference)} % ({c.reference_from})"
    if c.timed_in:
        return (f"no choice by latency: the final models were timed in different places ({'; '.join(c.timed_in)}); "
                "compare --objective size or macs, or re-time the model files on one machine with distill eval")
    if c.best is None:
        missing = [e.label for e in c.entries if e.cost is None]
        why = f"; {c.objective} is not measured in {', '.join(missing)}" if missing else ""
        return f"no run qualifies: no final model is {within}{why}"
    return f"best: {c.best.label}, the lowest {c.cost_name()} {within}"


def _cost_text(c: Comparison, e: Entry) -> str:
    m = e.measures
    return {"latency": ms(m.latency_ms.get(c.batch)) if c.batch else "-", "size": human_bytes(m.file_bytes),
            "macs": human_count(m.macs)}[c.objective]


def rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """The table as text: shared by the terminal, compare.md and compare.html."""
    head = ["run", "status", "final step", "top-1 %", "vs baseline", "params", "MACs", "stored size",
            f"latency b{c.batch}" if c.batch else "latency", "within drop", "best"]
    body = []
    for e in c.entries:
        m = e.measures
        body.append([e.label, e.record.run.status, f"{e.step.index} {e.step.kind}", pct(m.top1),
                     "baseline" if e is c.baseline else points(None if e.drop is None else -e.drop),
                     human_count(m.params), human_count(m.macs),
                     human_bytes(m.file_bytes), ms(m.latency_ms.get(c.batch)) if c.batch else "-",
                     "yes" if e.qualifies else "no", "best" if e is c.best else ""])
    return head, body


def to_json(c: Comparison) -> dict[str, Any]:
    runs = [{"label": e.label, "run_dir": str(e.run_dir), "name": e.record.run.name, "status": e.record.run.status,
             "step": e.step.index, "kind": e.step.kind, "drop": e.drop, "cost": e.cost, "qualifies": e.qualifies,
             "timed_on": timed_where(e), **e.measures.summary()} for e in c.entries]
    best = None if c.best is None else {"label": c.best.label, "run_dir": str(c.best.run_dir)}
    return {"objective": c.objective, "latency_batch": c.batch, "max_drop": c.max_drop,
            "reference": {"top1": c.reference, "from": c.reference_from,
                          "run": c.baseline.label if c.baseline is not None else None},
            "runs": runs, "best": best, "timed_in": list(c.timed_in),
            "verdict": verdict(c)}


def _where(e: Entry) -> str:
    run = e.record.run
    return f"{e.run_dir.resolve()} (recipe {run.name}, hash {run.recipe_hash or '-'}, {run.finished or 'not finished'})"


def render_md(c: Comparison) -> str:
    head, body = rows(c)
    lines = ["# compare", "", verdict(c), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    lines += ["", f"vs baseline: top-1 against {c.reference_from}, in percentage points. Runs:", ""]
    lines += [f"- {e.label}: {_where(e)}" for e in c.entries]
    return "\n".join(lines) + "\n"


def render_html(c: Comparison) -> str:
    head, body = rows(c)
    numeric = {3, 4, 5, 6, 7, 8}
    cells = [[td(v, "num" if i in numeric else "") for i, v in enumerate(row)] for row in body]
    classes = ["baseline" if e is c.best else "" for e in c.entries]
    div, xlabel = c.axis()
    points_ = [plots.Point(e.label, e.cost / div, e.measures.top1 or 0.0) for e in c.entries if e.cost is not None]
    chart = (f'<img src="{plots.pareto_figure([(xlabel, points_)], c.best.label if c.best else None, c.floor())}"'
             f' alt="accuracy against {escape(c.objective)}">' if points_ else note(f"{c.objective} was not measured."))
    runs = "<ul>" + "".join(f"<li>{escape(e.label)}: {escape(_where(e))}</li>" for e in c.entries) + "</ul>"
    parts = [f'<section id="summary"><h1>compare</h1><p>{escape(verdict(c))}</p></section>',
             section("runs", "Final student model of each run", table(head, cells, classes)
                     + note(f"vs baseline: top-1 against {c.reference_from}, in percentage points.") + runs),
             section("pareto", "Accuracy against " + c.objective, chart
                     + note("Red: the Pareto front; star: the best run; dashed: the lowest top-1 --max-drop allows."))]
    return page("distillcli compare", "\n".join(parts))
