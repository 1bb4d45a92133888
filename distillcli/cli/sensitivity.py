"""`distill sensitivity MODEL`: how much each layer's accuracy suffers from pruning it alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from distillcli.cli.app import app
from distillcli.cli.options import (DataOpt, DataRootOpt, DeviceOpt, ForceOpt, JsonOpt, QuietOpt, SubsetOpt,
                                    ThreadsOpt, TrustOpt, guarded, progress_for, refuse_overwrite, renamed,
                                    step_options)
from distillcli.cli.step_flags import step_flags
from distillcli.facts import SensitivityFacts
from distillcli.output import Output
from distillcli.steps.options import SensitivityConfig


@app.command()
@guarded
@step_flags(SensitivityConfig, "ratios", "importance", "ignore", "max_drop")
def sensitivity(model: Path = typer.Argument(..., metavar="MODEL", help="a model file written by distill (.pt)"),
                options: dict[str, Any] = ...,
                budget: Optional[float] = renamed("--budget", "--max-drop"),
                out: Path = typer.Option(Path("sensitivity"), "--out", help="folder for sensitivity.csv and .png"),
                force: bool = ForceOpt, data: Optional[str] = DataOpt, data_root: Optional[str] = DataRootOpt,
                subset: Optional[int] = SubsetOpt, device: str = DeviceOpt, threads: Optional[int] = ThreadsOpt,
                quiet: bool = QuietOpt, as_json: bool = JsonOpt, trust_code: bool = TrustOpt) -> None:
    """Prune each layer alone at several ratios and measure accuracy; writes a CSV, a plot and
    suggested per-layer ratios (`overrides:` for the prune step).

    Example: distill sensitivity runs/x/models/student.pt --data-root data/ --subset 2000 --max-drop 0.5
    """
    from rich.table import Table

    from distillcli.compress.pruning import overrides_yaml
    from distillcli.engine.file_recipe import run_on_file

    if budget is not None:
        options["max_drop"] = budget
    cfg = step_options(SensitivityConfig, "sensitivity", **options)
    refuse_overwrite(out / "sensitivity.csv", force)
    run = run_on_file(model, "sensitivity", cfg, progress_for(quiet, as_json), workdir=out.parent / f".{out.name}.work",
                      trust_code=trust_code, data=data, data_root=data_root, device=device, threads=threads,
                      latency=False, val_subset=subset)
    assert isinstance(run.info, SensitivityFacts)
    info = _move_results(run.info, out)
    suggested = info.suggested_overrides
    table = Table(title=f"sensitivity of {model.name} (unpruned top-1 {info.baseline_top1:.2f} %)")
    for col in ["layer", "channels", *[f"top-1 @{r:g}" for r in cfg.ratios], "suggested"]:
        table.add_column(col, justify="left" if col == "layer" else "right")
    for layer in suggested:
        rows = {r.ratio: r for r in info.rows if r.layer == layer}
        table.add_row(layer, str(rows[cfg.ratios[0]].channels), *[f"{rows[r].top1:.2f}" for r in cfg.ratios],
                      f"{suggested[layer]:g}")
    o = Output(as_json, quiet)
    o.result({"model": str(model), **info.model_dump(mode="json", exclude={"step"})}, table)
    o.info(f"wrote {info.csv} and {info.plot}\n"
           f"per-layer ratios within a {cfg.max_drop:g}-point drop, for the prune step:\n{overrides_yaml(suggested)}")


def _move_results(info: SensitivityFacts, out: Path) -> SensitivityFacts:
    """The step writes into <workdir>/sensitivity/; the command's --out names the folder itself."""
    import shutil

    out.mkdir(parents=True, exist_ok=True)
    moved = {}
    for key, written in (("csv", info.csv), ("plot", info.plot)):
        src = Path(written)
        dest = out / src.name
        src.replace(dest)
        moved[key] = str(dest)
    shutil.rmtree(Path(info.csv).parent.parent, ignore_errors=True)
    return info.model_copy(update=moved)
