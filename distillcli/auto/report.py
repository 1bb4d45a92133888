"""What a search leaves behind: candidates.md / .csv (a row per trial), candidates.png
(validation top-1 against the objective, the Pareto front marked) and auto.json."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

from distillcli.atomic_write import atomic_path, write_text
from distillcli.auto.score import ratio_text, seen_warning
from distillcli.auto.search import SearchResult
from distillcli.report import plots

COLUMNS = ["trial", "state", "candidate", "epochs", "val top-1 %", "drop pt", "cost", "vs start",
           "re-timed side by side", "within drop", "pareto", "chosen"]


def _cost(objective: str, value: float | None) -> str:
    from distillcli.report.markdown import human_bytes, human_count

    if value is None:
        return "-"
    if objective == "latency":
        return f"{value:.2f} ms"
    return human_bytes(int(value)) if objective == "size" else human_count(int(value))


def front(result: SearchResult) -> set[int]:
    """Trial numbers on the Pareto front of the finished candidates (cheaper or more accurate than any other)."""
    done = [c for c in result.candidates if c.state == "complete" and c.twin is None]
    return {done[i].number for i in plots.pareto_front([(c.get("cost"), c.get("top1")) for c in done])}


def rows(result: SearchResult) -> list[list[str]]:
    objective, on_front = result.cfg.objective, front(result)
    out = []
    for c in result.candidates:
        top1, drop, ratio, again = c.get("top1"), c.get("drop"), c.get("cost_ratio"), c.get("retimed_ratio")
        note = (c.get("error") if c.state == "failed" else f"same model as #{c.twin}" if c.twin is not None
                else "budget spent" if c.get("stopped") == "budget" else
                f"precision on #{c.get('from_trial')}'s model" if c.get("from_trial") is not None else
                f"#{c.get('milder_of')} pruned less" if c.get("milder_of") is not None else None)
        out.append([c.label, c.state + (f" ({note})" if note else ""), c.description if c.choice else "-",
                    str(c.get("epochs") or 0), "-" if top1 is None else f"{top1:.2f}",
                    "-" if drop is None else f"{drop:.2f}", _cost(objective, c.get("cost")),
                    ratio_text(objective, ratio) if ratio else "-", ratio_text(objective, again) if again else "-",
                    "-" if c.state != "complete" else "yes" if c.get("feasible") else "no",
                    "yes" if c.number in on_front else "", "*" if result.chosen is c else ""])
    return out


def chart(result: SearchResult, path: Path) -> None:
    cfg, ref = result.cfg, result.reference
    label = {"latency": f"latency at batch {cfg.batch_size}", "size": "stored size", "macs": "MACs"}
    points = [plots.Point("start", 1.0, ref.top1)]
    points += [plots.Point(c.label, c.get("cost_ratio"), c.get("top1")) for c in result.candidates
               if c.state == "complete" and c.twin is None]
    uri = plots.pareto_figure([(label[cfg.objective] + " / the starting model's, validation split", points)],
                              best=result.chosen.label if result.chosen else None, floor=ref.top1 - cfg.max_drop)
    with atomic_path(path) as tmp:
        tmp.write_bytes(base64.b64decode(uri.split(",", 1)[1]))


def summary(result: SearchResult, test: dict[str, Any] | None, files: dict[str, Path]) -> dict[str, Any]:
    cfg, c = result.cfg, result.chosen
    states = [x.state for x in result.candidates]
    return {
        "objective": cfg.objective, "max_drop": cfg.max_drop, "budget": cfg.budget, "seconds": round(result.seconds, 1),
        "batch_size": cfg.batch_size if cfg.objective == "latency" else None,
        "chosen_on": f"val_split of {result.base['data']['val_from']}",  # the share candidates are compared on
        "start": {"val_top1": result.reference.top1, "cost": result.reference.cost,
                  "warning": seen_warning(result.reference)},
        "trials": {s: states.count(s) for s in ("complete", "pruned", "failed")},
        "best": None if c is None else {
            "trial": c.number, "candidate": c.description, "choice": c.choice, "run_dir": c.get("run_dir"),
            "val": {"top1": c.get("top1"), "drop": c.get("drop"), "cost": c.get("cost"),
                    "cost_ratio": c.get("cost_ratio"), "retimed_ratio": c.get("retimed_ratio")},
            "test": test},
        "files": {k: str(v) for k, v in files.items()},
    }


def write_outputs(result: SearchResult, test: dict[str, Any] | None, extra: dict[str, Path]) -> dict[str, Any]:
    out = result.out
    files = {"table": out / "candidates.md", "csv": out / "candidates.csv", "chart": out / "candidates.png",
             "summary": out / "auto.json", **extra}
    body = rows(result)
    md = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] + ["| " + " | ".join(r) + " |" for r in body]
    head = (f"# auto: {result.cfg.objective}, at most {result.cfg.max_drop:g} pt below the starting model "
            f"({result.reference.top1:.2f} % on the validation split)\n\n")
    write_text(files["table"], head + "\n".join(md) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows(body)
    write_text(files["csv"], buffer.getvalue())
    chart(result, files["chart"])
    data = summary(result, test, files)
    write_text(files["summary"], json.dumps(data, indent=2) + "\n")
    return data


def verdict(result: SearchResult, test: dict[str, Any] | None) -> str:
    c, objective = result.chosen, result.cfg.objective
    if c is None or test is None:
        return (f"no candidate stayed within {result.cfg.max_drop:g} points of the starting model: give a larger "
                "--time-budget (or --trials), a larger --max-drop, or more fine-tune epochs (auto.max_epochs)")
    ratio = test.get("cost_ratio")
    return (f"chosen: trial {c.number} ({c.description})\n"
            f"  validation split: top-1 {c.get('top1'):.2f} % ({-c.get('drop'):+.2f} pt), "
            f"{ratio_text(objective, c.get('cost_ratio'))}"
            + (f" (timed again beside the next fastest: {ratio_text(objective, c.get('retimed_ratio'))})"
               if c.get("retimed_ratio") else "") + "\n"
            f"  test split (measured once): top-1 {test['chosen']['top1']:.2f} % against {test['start']['top1']:.2f} % "
            f"({-test['drop']:+.2f} pt)" + (f", {ratio_text(objective, ratio)}" if ratio else ""))

