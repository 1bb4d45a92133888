"""`distill run` and `distill resume`: a recipe through the engine, its summary, the --max-drop gate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from distillcli.cli.app import app
from distillcli.cli.options import (JsonOpt, QuietOpt, RecipeDeviceOpt, SetOpt, ThreadsOpt, TrustOpt, guarded,
                                    progress_for)
from distillcli.output import Output, measures_table


def _overrides(sets: list[str] | None, device: str | None, seed: int | None, threads: int | None = None) -> list[str]:
    out = list(sets or []) + ([f"threads={threads}"] if threads is not None else [])
    if device is not None:
        out.append(f"device={device}")
    if seed is not None:
        out.append(f"seed={seed}")
    return out


def _launch_torchrun(nproc: int, out: Path) -> None:
    """`distill run --nproc N`: the same command under torchrun (its own launcher and rendezvous)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    if "--out" not in args and not any(a.startswith("--out=") for a in args):
        args += ["--out", str(out)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "distillcli", *args]
    raise typer.Exit(subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}))


def _print_run(result: Any, quiet: bool, as_json: bool, max_drop: float | None) -> None:
    record, run_dir = result.record, result.run_dir
    steps = [{"index": s.index, "kind": s.kind, "target": s.target, "model_file": s.model_file,
              **s.measures.summary()} for s in record.steps]
    summary: dict[str, Any] = {"status": record.run.status, "run_dir": str(run_dir),
                               "metrics": str(run_dir / "metrics.json"), "report": str(run_dir / "report.html"),
                               "steps": steps}
    gate = _drop_gate(record, max_drop)
    if gate is not None:
        summary["gate"] = gate
        if not gate["passed"]:
            from distillcli.errors import GateFailed

            error = GateFailed(f"top-1 dropped {gate['drop']:.2f} points against {gate['baseline']} "
                               f"(allowed: {max_drop:g})", "the run's files are kept; see " + summary["report"])
            error.details = {"summary": summary}  # type: ignore[attr-defined]
            raise error
    rows = [(f"{s.index} {s.kind} [{s.target}]" + (" (baseline)" if record.baseline and record.baseline.step == s.index
                                                    else ""), s.measures.model_dump()) for s in record.steps]
    o = Output(as_json, quiet)
    o.result(summary, measures_table(f"run {record.run.name}", rows))
    final = record.final_step()
    o.info(f"report: {run_dir / 'report.html'} (and report.md)" + (f"\nnext: distill eval {run_dir / final.model_file}"
                                                 if final is not None and final.model_file else ""))


def _drop_gate(record: Any, max_drop: float | None) -> dict[str, Any] | None:
    """--max-drop: the final student's top-1 against the run's baseline."""
    if max_drop is None:
        return None
    final, base = record.final_step(), record.baseline
    if final is None or base is None or final.measures.top1 is None or base.measures.top1 is None:
        from distillcli.errors import OptionError

        raise OptionError("--max-drop needs a measured baseline (a teacher, or a model the run starts from) and a "
                          "final student", "add a teacher or start from a model file")
    drop = base.measures.top1 - final.measures.top1
    return {"max_drop": max_drop, "drop": drop, "baseline": base.label, "baseline_top1": base.measures.top1,
            "final_top1": final.measures.top1, "passed": drop <= max_drop}


@app.command()
@guarded
def run(recipe: Path = typer.Argument(..., metavar="RECIPE", help="the recipe YAML file"),
        set_: Optional[list[str]] = SetOpt, device: Optional[str] = RecipeDeviceOpt,
        seed: Optional[int] = typer.Option(None, "--seed", help="random seed (overrides the recipe)"),
        threads: Optional[int] = ThreadsOpt,
        out: Optional[Path] = typer.Option(None, "--out", help="run directory", show_default="runs/<name>-<time>"),
        resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory from its "
                                              "last checkpoint"),
        force: bool = typer.Option(False, "--force", metavar="", help="replace the run already in --out"),
        nproc: Optional[int] = typer.Option(None, "--nproc", min=1, max=1024, help="launch N processes with torchrun "
                                            "(distributed data parallel on this machine)"),
        max_drop: Optional[float] = typer.Option(None, "--max-drop", min=0, help="CI gate: exit 3 when the final "
                                                 "student's top-1 is more than this many points below the baseline"),
        dry_run: bool = typer.Option(False, "--dry-run", metavar="", help="load the recipe, data and weights, print the plan, "
                                     "write nothing"),
        trust_code: bool = TrustOpt, quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Run a recipe: train / distill / compress, evaluate after every step, write the report.

    Example: distill run recipes/vgg16_cifar10.yaml --set steps.0.epochs=1 --device cpu
    """
    from distillcli.errors import OptionError
    from distillcli.engine.pipeline import Pipeline
    from distillcli.recipe import load_recipe
    from distillcli.engine.rundir import default_run_dir

    r = load_recipe(recipe, _overrides(set_, device, seed, threads) + (["trust_code=true"] if trust_code else []))
    if resume is not None and out is not None and resume.resolve() != out.resolve():
        raise OptionError("--resume and --out name different directories", "give only --resume RUN_DIR")
    if resume is not None and force:
        raise OptionError("--resume continues a run and --force replaces it", "give one of them")
    if dry_run:
        from distillcli.models.sources import trusting_code
        from distillcli.engine.plan import plan as make_plan

        with trusting_code(r.trust_code):
            plan = make_plan(r, resume or out or default_run_dir(r.name), force=force, resume=resume is not None)
        Output(as_json).result(plan, _plan_text(plan))
        return
    if nproc is not None and nproc > 1 and "RANK" not in os.environ:
        _launch_torchrun(nproc, out or resume or default_run_dir(r.name))
    pipeline = Pipeline(r, progress_for(quiet, as_json), out=resume or out, recipe_file=str(recipe),
                        resume=resume is not None, force=force)
    result = pipeline.run()
    if pipeline.dist.is_main:
        _print_run(result, quiet, as_json, max_drop)


def _plan_text(plan: dict[str, Any]) -> str:
    from distillcli.report.markdown import human_count

    lines = [f"plan for {plan['name']}: device {plan['device']}, data {plan['data']['name']} "
             f"({plan['data']['train_samples']} train / {plan['data']['test_samples']} test images"
             + (f", {plan['data']['val_samples']} val held out of {plan['data']['val_from']} by val_split" if plan['data']['val_samples']
                else "") + ")"]
    for role in ("teacher", "student"):
        m = plan["models"].get(role)
        if m:
            lines.append(f"  {role}: {m['arch']}  {human_count(m['params'])} params  {human_count(m['macs'])} MACs"
                         + (f"  (from {m['source']})" if m.get("source") else ""))
        if role == "teacher" and plan["models"].get("teachers"):
            lines[-1] += "  (the weighted mean of the logits of:)"
            lines += [f"    teacher[{i}]: {t['arch']}  weight {t['weight']:.3g}  {human_count(t['params'])} params  "
                      f"{human_count(t['macs'])} MACs  (from {t['source']})" for i, t in enumerate(plan["models"]["teachers"])]
    for s in plan["steps"]:
        lines.append(f"  step {s['index']}: {s['kind']} [{s['target']}]" + (f"  {s['epochs']} epochs" if s.get("epochs")
                                                                            else ""))
    lines.append(f"  files would go to {plan['run_dir']} (nothing was written)")
    return "\n".join(lines)


@app.command()
@guarded
def resume(run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="a run directory written by `distill run`"),
           trust_code: bool = TrustOpt, quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Continue an interrupted or killed run from its last checkpoint (mid-epoch included).

    Example: distill resume runs/quickstart-20261201-120000
    """
    from distillcli.errors import RunDirError
    from distillcli.engine.pipeline import Pipeline
    from distillcli.recipe import load_recipe

    if not (run_dir / "recipe.yaml").is_file():
        raise RunDirError(f"{run_dir} holds no run (no recipe.yaml)", "give the directory `distill run` wrote")
    r = load_recipe(run_dir / "recipe.yaml", ["trust_code=true"] if trust_code else [])
    pipeline = Pipeline(r, progress_for(quiet, as_json), out=run_dir, recipe_file=str(run_dir / "recipe.yaml"),
                        resume=True)
    result = pipeline.run()
    if pipeline.dist.is_main:
        _print_run(result, quiet, as_json, None)
