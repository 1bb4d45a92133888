"""The report's charts, each returned as a PNG data URI (matplotlib's Agg canvas: no display, no pyplot)."""

from __future__ import annotations

import base64
import io
from typing import NamedTuple, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from distillcli.record import EpochRecord

FRONT, OTHER, ACCENT = "#d62728", "#1f77b4", "#2ca02c"


class Point(NamedTuple):
    label: str
    cost: float
    top1: float


def bytes_unit(largest: float) -> tuple[float, str]:
    return (2**20, "MiB") if largest >= 2**20 else (2**10, "KiB")


def png_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, accuracy) points no other point beats: none is as cheap and as
    accurate, and strictly better in one of the two."""
    def beaten(x: float, y: float) -> bool:
        return any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for x2, y2 in points)

    return [i for i, (x, y) in enumerate(points) if not beaten(x, y)]


def _merged(points: Sequence[Point]) -> list[Point]:
    """Points that fall on one spot (an unchanged model measured twice: the same top-1, a cost
    within 2 % of the axis) become one, labelled with both, so labels do not overprint."""
    costs = [p.cost for p in points]
    near = 0.02 * (max(costs) - min(costs)) if costs else 0.0
    out: list[Point] = []
    for p in points:
        i = next((i for i, q in enumerate(out) if q.top1 == p.top1 and abs(q.cost - p.cost) <= near), None)
        if i is None:
            out.append(p)
        else:
            out[i] = out[i]._replace(label=f"{out[i].label}, {p.label}")
    return out


def _pareto_axes(ax: Axes, points: Sequence[Point], xlabel: str, best: str | None = None,
                 floor: float | None = None) -> None:
    points = _merged(points)
    front = set(pareto_front([(p.cost, p.top1) for p in points]))
    on = sorted((points[i] for i in front), key=lambda p: p.cost)
    ax.step([p.cost for p in on], [p.top1 for p in on], where="post", color=FRONT, alpha=0.5, label="Pareto front")
    for i, p in enumerate(points):
        chosen = best is not None and best in p.label.split(", ")
        ax.scatter([p.cost], [p.top1], s=110 if chosen else 60 if i in front else 36, zorder=3,
                   color=FRONT if i in front else OTHER, edgecolors="black" if chosen else "none", linewidths=2,
                   marker="*" if chosen else "o")
        ax.annotate(p.label, (p.cost, p.top1), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if floor is not None:
        ax.axhline(floor, color=ACCENT, ls="--", lw=1, label="lowest top-1 allowed")
    costs = [p.cost for p in points]
    if min(costs) > 0 and max(costs) / min(costs) > 30:
        ax.set_xscale("log")
    ax.margins(0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 %")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def pareto_figure(panels: Sequence[tuple[str, Sequence[Point]]], best: str | None = None,
                  floor: float | None = None) -> str:
    """One panel per (x label, points): accuracy against a cost, the front in red; ``best`` (a label)
    drawn as a star, ``floor`` (a top-1) as a dashed line."""
    fig = Figure(figsize=(5.6 * len(panels), 4.2), layout="constrained")
    for ax, (xlabel, points) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        _pareto_axes(ax, points, xlabel, best, floor)
    return png_uri(fig)


def curves_figure(curves: Sequence[tuple[str, list[EpochRecord]]]) -> str:
    """Loss (train solid, test dashed, validation dotted) and top-1 (test solid, validation dotted)
    per epoch, one colour per step."""
    fig = Figure(figsize=(10.4, 3.8), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for i, (label, curve) in enumerate(curves):
        color = f"C{i % 10}"
        epochs = [r.epoch for r in curve]
        loss_ax.plot(epochs, [r.train_loss for r in curve], color=color, marker="o", ms=3, label=f"{label} train")
        for split, loss_style, top1_style in (("test", "--", "-"), ("val", ":", ":")):
            rows = [(r.epoch, getattr(r, f"{split}_loss"), getattr(r, f"{split}_top1")) for r in curve
                    if getattr(r, f"{split}_loss") is not None]
            if rows:
                x, loss, top1 = zip(*rows)
                loss_ax.plot(x, loss, color=color, ls=loss_style, marker="o", ms=3, label=f"{label} {split}")
                acc_ax.plot(x, top1, color=color, ls=top1_style, marker="o", ms=3, label=f"{label} {split}")
    for ax, title in ((loss_ax, "loss"), (acc_ax, "top-1 % (test, val)")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return png_uri(fig)


def per_class_figure(class_names: Sequence[str], values: Sequence[float | None]) -> str:
    n = len(values)
    fig = Figure(figsize=(min(14.0, max(6.0, 0.35 * n)), 3.6), layout="constrained")
    ax = fig.subplots()
    ax.bar(range(n), [v or 0.0 for v in values], color=[OTHER if v is not None else "#cccccc" for v in values])
    if n <= 60:
        ax.set_xticks(range(n), [str(c) for c in class_names[:n]], rotation=90 if n > 10 else 0, fontsize=8)
    else:
        ax.set_xlabel("class index")
    known = [v for v in values if v is not None]
    if known:
        ax.axhline(sum(known) / len(known), color=FRONT, lw=1, ls="--", label="mean of classes")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("top-1 %")
    ax.grid(axis="y", alpha=0.3)
    return png_uri(fig)


def confusion_figure(class_names: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """Rows normalised to the share of each true class (colour); counts written when there is room."""
    n = len(matrix)
    rows = [[c / max(sum(row), 1) for c in row] for row in matrix]
    side = min(10.0, max(4.5, 0.45 * n))
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    if n <= 20:
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                        color="white" if rows[i][j] > 0.5 else "black")
    if n <= 40:
        names = [str(c) for c in class_names[:n]]
        ax.set_xticks(range(n), names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return png_uri(fig)
