"""report.html: one self-contained page per run (inline CSS, charts as PNG data URIs)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import NamedTuple, Sequence

from distillcli.record import Measures, RunRecord, StepRecord
from distillcli.report import plots
from distillcli.report.markdown import human_bytes, human_count, teacher_cache_line
from distillcli.report.numbers import (OTHER_DEVICE, SAME_WITHIN_NOISE, best_text, device_mark, device_note, duration,
                                       held_from, latency_note, measured_on, ms, pct, points, same_device, size_ratio,
                                       speed_ratio, spread, step_facts, training_note, within_noise)

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d1d1f;
       max-width: 1240px; margin: 24px auto; padding: 0 20px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 32px 0 10px; border-bottom: 1px solid #ddd; }
section { margin-bottom: 12px; }
table { border-collapse: collapse; margin: 6px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d8d8d8; padding: 4px 8px; vertical-align: top; }
th { background: #f3f4f6; text-align: left; font-weight: 600; white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; }
td.delta { white-space: nowrap; font-size: 12.5px; }
tr.baseline td { background: #fff8e1; }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 8px; background: #ffe08a; }
.status { font-weight: 600; padding: 2px 10px; border-radius: 10px; color: #fff; }
.status.ok { background: #2e7d32; } .status.failed { background: #c62828; }
.status.interrupted, .status.running { background: #ef6c00; }
.error { border-left: 4px solid #c62828; background: #fdecea; padding: 8px 12px; white-space: pre-wrap; }
.facts th { width: 150px; } .note { color: #666; } .good { color: #2e7d32; } .bad { color: #c62828; }
.file { color: #777; font-size: 12px; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; padding: 10px; overflow-x: auto; font-size: 12.5px; }
"""


class Row(NamedTuple):
    index: str
    name: str
    target: str
    measures: Measures
    baseline: bool
    file: str | None = None
    seconds: float | None = None
    training: str = ""  # the step's training loops in a few words (training_note)
    best: str = "-"  # the step's best epoch on the validation split (best_text)


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
            f'<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n')


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}">\n<h2>{escape(title)}</h2>\n{body}\n</section>\n'


def table(head: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = ()) -> str:
    """``head`` is plain text (escaped here); cells are HTML already (escape their text first)."""
    out = ["<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(row) + "</tr>")
    return "\n".join(out + ["</table>"])


def td(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{escape(text)}</td>' if cls else f"<td>{escape(text)}</td>"


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{escape(alt)}">'


def facts(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
    return f'<table class="facts">\n{rows}\n</table>'


def latency_batches(measures: Sequence[Measures]) -> list[str]:
    return sorted({b for m in measures for b in m.latency_ms}, key=int)


def rows_of(record: RunRecord) -> list[Row]:
    """The models in the table: those measured before the steps (several teachers, each alone, then a
    baseline loaded from a file) first, then the steps."""
    base = record.baseline
    rows = [Row("-", f"teacher[{t.index}] {t.arch} (weight {t.weight:.3g})", "teacher", t.measures, False,
                Path(t.checkpoint).name) for t in record.teachers]
    if base is not None and base.step is None:
        rows.append(Row("-", f"start: {base.label}", "teacher" if base.source == "teacher" else "student",
                        base.measures, True))
    for s in record.steps:
        rows.append(Row(str(s.index), s.kind, s.target, s.measures, base is not None and base.step == s.index,
                        s.model_file, s.seconds, training_note(s.curve), best_text(s)))
    return rows


def _tone(text: str) -> str:
    """Colour a delta by whether it is an improvement."""
    if text.startswith("+") or text.endswith(("smaller", "faster")):
        return f'<span class="good">{escape(text)}</span>'
    if text.startswith("-") and text != "-" or text.endswith(("larger", "slower")):
        return f'<span class="bad">{escape(text)}</span>'
    return escape(text)


def _delta(ref: Measures | None, m: Measures, batch: str | None) -> str:
    if ref is None:
        return "<td>-</td>"
    top1 = points(None if m.top1 is None or ref.top1 is None else m.top1 - ref.top1)
    parts = [_tone(top1), "size " + _tone(size_ratio(ref.file_bytes, m.file_bytes))]
    if batch is not None:
        speed = OTHER_DEVICE if not same_device(ref, m) else SAME_WITHIN_NOISE if within_noise(ref, m, batch) \
            else speed_ratio(ref.latency_ms.get(batch), m.latency_ms.get(batch))
        parts.append(f"b{batch} " + _tone(speed))
    return '<td class="delta">' + "<br>".join(parts) + "</td>"


def _params(m: Measures) -> str:
    if m.nonzero_params is not None and m.params and m.nonzero_params < m.params:
        return f"{human_count(m.params)} ({human_count(m.nonzero_params)} nonzero)"
    return human_count(m.params)


def steps_table(record: RunRecord) -> str:
    rows = rows_of(record)
    if not rows:
        return note("No step was measured.")
    base = record.baseline.measures if record.baseline is not None else None
    batches = latency_batches([r.measures for r in rows])
    big = batches[-1] if batches else None
    head = ["#", "step", "model", "top-1 %", "top-5 %", "params", "MACs", "stored size"]
    chosen = any(s.best is not None for s in record.steps)  # only on a validation split: never on the test split
    head += [f"latency b{b}" for b in batches] + ["vs baseline", "vs step before"]
    head += ["best epoch (top-1 %)"] if chosen else []
    body, classes = [], []
    for i, r in enumerate(rows):
        m = r.measures
        detail = " · ".join(([duration(r.seconds)] if r.seconds is not None else []) + ([r.training] if r.training else [])
                            + ([r.file] if r.file else []))
        name = escape(r.name) + (f'<div class="file">{escape(detail)}</div>' if detail else "")
        model = escape(r.target) + (' <span class="tag">baseline</span>' if r.baseline else "")
        cells = [td(r.index), f"<td>{name}</td>", f"<td>{model}</td>", td(pct(m.top1), "num"), td(pct(m.top5), "num"),
                 td(_params(m), "num"), td(human_count(m.macs), "num"), td(human_bytes(m.file_bytes), "num")]
        cells += [td(ms(m.latency_ms.get(b)) + spread(m, b) + device_mark(m, record.run), "num") for b in batches]
        cells.append("<td>baseline</td>" if r.baseline else _delta(base, m, big))
        cells.append(_delta(rows[i - 1].measures if i else None, m, big))
        cells += [td(r.best)] if chosen else []
        body.append(cells)
        classes.append("baseline" if r.baseline else "")
    text = table(head, body, classes)
    if record.baseline is not None:
        text += note(f"Baseline: {record.baseline.label}. Top-1 differences are in percentage points; size and "
                     f"latency ratios compare stored file size and the median latency at batch {big or '-'}.")
    text += note(f"Top-1 and top-5 are each model's as it is, measured on {measured_on(record.data)}."
                 + (" Best epoch: the epoch of highest top-1 on the validation split, with its val and test "
                    "top-1; the model kept is the last epoch's." if chosen else ""))
    if batches:
        text += note(latency_note(record.run))
        if (elsewhere := device_note(record)) is not None:
            text += note(elsewhere)
    cache = [line for line in map(teacher_cache_line, record.steps) if line]
    if cache:
        text += note("Teacher outputs: " + "; ".join(cache) + ".")
    return text


def _what_steps_did(record: RunRecord) -> str:
    """Per step, what it recorded about itself (int8 target, layers kept in float, channel
    multiple ...) and its warnings."""
    parts = []
    for s in record.steps:
        pairs = step_facts(s) + [("warning", w) for w in s.warnings]
        if pairs:
            parts.append(f"<h3>step {s.index}: {escape(s.kind)}</h3>\n{facts(pairs)}")
    return "\n".join(parts) or note("No step recorded facts.")


def _header(record: RunRecord) -> str:
    run, data = record.run, record.data
    status = f'<span class="status {escape(run.status)}">{escape(run.status)}</span>'
    error = f'<div class="error">{escape(run.error)}</div>' if run.error else ""
    pairs = [("device", run.device), ("threads", str(run.threads)), ("world size", str(run.world_size)),
             ("seed", str(run.seed)), ("duration", duration(run.seconds)),
             ("started / finished", f"{run.started or '-'} / {run.finished or '-'}"),
             ("data", f"{data.name}: {data.num_classes} classes, {data.train_samples} train / "
                      + (f"{data.val_samples} val (held out of the {held_from(data)} data) / " if data.val_samples else "")
                      + f"{data.test_samples} test samples, input {'x'.join(map(str, data.input_shape))}"),
             ("versions", ", ".join(f"{k} {v}" for k, v in run.versions.items()) or "-"),
             ("machine", run.machine.describe() if run.machine else "-"),
             ("recipe hash", run.recipe_hash or "-"), ("recipe file", run.recipe_file or "-")]
    if run.resumed:
        pairs.append(("resumed", ", ".join(run.resumed)))
    return (f'<section id="summary">\n<h1>{escape(run.name)} {status}</h1>\n{error}\n{facts(pairs)}\n</section>\n')


def _pareto(record: RunRecord) -> str:
    rows = [r for r in rows_of(record) if r.measures.top1 is not None]
    batches = latency_batches([r.measures for r in rows])
    panels: list[tuple[str, list[plots.Point]]] = []

    def label(r: Row) -> str:
        if r.index != "-":
            return f"{r.index} {r.name}"
        return "start" if r.baseline else r.name.split()[0]  # one of several teachers: teacher[i]

    if batches:
        b = batches[-1]
        pts = [plots.Point(label(r), r.measures.latency_ms[b], r.measures.top1 or 0.0)
               for r in rows if b in r.measures.latency_ms]
        panels.append((f"latency at batch {b} (ms)", pts))
    div, unit = plots.bytes_unit(max((r.measures.file_bytes or 0 for r in rows), default=0))
    sized = [plots.Point(label(r), r.measures.file_bytes / div, r.measures.top1 or 0.0)
             for r in rows if r.measures.file_bytes]
    if sized:
        panels.append((f"stored size ({unit})", sized))
    if not panels:
        return note("No latency or stored size was measured (see report.latency and report.save_models).")
    text = img(plots.pareto_figure(panels), "accuracy against latency and stored size")
    missing = [] if batches else ["latency was not measured (report.latency: false)"]
    return text + note("Red points are on the Pareto front: no other model is as fast (or small) and as accurate. "
                       + "; ".join(missing))


def _curves(record: RunRecord) -> str:
    curves = [(f"{s.index} {s.kind} [{s.target}]", s.curve) for s in record.steps if s.curve]
    if not curves:
        return note("No step trained a model.")
    return img(plots.curves_figure(curves), "loss and top-1 per epoch on the test and validation splits")


def _final(record: RunRecord) -> StepRecord | None:
    return record.final_step("student")


def _per_class(record: RunRecord) -> str:
    final = _final(record)
    if final is None or not final.measures.per_class_top1:
        return note("No student model was measured.")
    values = final.measures.per_class_top1
    known = [(v, n) for v, n in zip(values, record.data.class_names) if v is not None]
    worst = ", ".join(f"{n} {v:.1f} %" for v, n in sorted(known)[:3])
    return (note(f"Step {final.index} ({final.kind}); weakest classes: {worst or '-'}.")
            + img(plots.per_class_figure(record.data.class_names, values), "top-1 per class"))


def _confusion(record: RunRecord) -> str:
    final = _final(record)
    if final is None or not final.measures.confusion:
        return note("No confusion matrix was recorded for the final student model "
                    "(metrics.json written by an older distillcli, or no student step).")
    return (note(f"Step {final.index} ({final.kind}): rows are the true class, columns the predicted one.")
            + img(plots.confusion_figure(record.data.class_names, final.measures.confusion), "confusion matrix"))


def _environment(record: RunRecord) -> str:
    run = record.run
    pairs = [("device", run.device), ("threads", str(run.threads)), ("world size", str(run.world_size))]
    pairs += [(k, v) for k, v in run.versions.items()]
    if run.machine:
        pairs += [("machine", run.machine.describe()), ("oneDNN", run.machine.onednn or "-")]
    pairs += [("checkpoints", f"{run.checkpoint_writes} written in {duration(run.checkpoint_seconds)}"),
              ("run directory", run.dir or "-")]
    return facts(pairs)


def render_html(record: RunRecord, recipe_yaml: str | None) -> str:
    recipe = f"<pre>{escape(recipe_yaml)}</pre>" if recipe_yaml is not None else note("recipe.yaml was not found.")
    body = [_header(record),
            section("steps", "Steps", steps_table(record)),
            section("step-facts", "What each step did", _what_steps_did(record)),
            section("pareto", "Accuracy against cost", _pareto(record)),
            section("curves", "Training curves", _curves(record)),
            section("per-class", "Per-class accuracy of the final model", _per_class(record)),
            section("confusion", "Confusion matrix of the final model", _confusion(record)),
            section("environment", "Environment", _environment(record)),
            section("recipe", "Resolved recipe", recipe)]
    return page(f"{record.run.name}: distillcli report", "\n".join(body))
