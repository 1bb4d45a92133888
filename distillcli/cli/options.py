"""Options shared by several commands, declared once; and the error guard every command uses."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import typer

from distillcli.errors import DistillError

DeviceOpt = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps")
RecipeDeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps (overrides the recipe)")
DataOpt = typer.Option(None, "--data", help="dataset name (`distill list datasets`)",
                       show_default="the one recorded in the file")
DataRootOpt = typer.Option(None, "--data-root", help="dataset folder", show_default="the one recorded in the file")
JsonOpt = typer.Option(False, "--json", metavar="", help="print one JSON object on stdout (for scripts)")
QuietOpt = typer.Option(False, "--quiet", "-q", metavar="", help="no progress output")
ForceOpt = typer.Option(False, "--force", metavar="", help="overwrite the output if it exists")
ThreadsOpt = typer.Option(None, "--threads", min=1, max=1024, help="CPU threads (fewer when other work shares the "
                          "cores)")
SubsetOpt = typer.Option(None, "--subset", min=1, help="evaluate on the first N validation samples only")
ValSplitOpt = typer.Option(None, "--val-split", min=0.0, max=0.5, help="hold out this share of --val-from's split "
                           "for choices (max_drop's control images), as data.val_split does")
ValFromOpt = typer.Option(None, "--val-from", help="train | test: the split --val-split holds out of (test: when "
                          "the model trained on all the training images; results then use the rest of the test split)")
TrustOpt = typer.Option(False, "--trust-code", metavar="", help="allow a model built by your own code (arch: py:...) to import and "
                        "run that code (asked every time; never saved)")
SetOpt = typer.Option(None, "--set", help="override a recipe key: --set steps.0.epochs=1 (repeatable)")


def renamed(old: str, new: str) -> Any:
    """An option's name before it became ``new``: hidden, kept for one release, one warning line when used."""
    def warn(value: Any) -> Any:
        if value is not None:
            sys.stderr.write(f"warning: {old} is now {new}\n")
        return value

    return typer.Option(None, old, hidden=True, callback=warn)


def _fail(kind: str, message: str, hint: str | None, code: int, as_json: bool,
          details: dict[str, Any] | None = None) -> None:
    """One message on stderr (and, with --json, one JSON document on stdout), then exit ``code``."""
    sys.stderr.write(f"error: {message}" + (f"\n  -> {hint}" if hint else "") + "\n")
    details = details or {}
    if as_json:
        sys.stdout.write(json.dumps({"status": "error", "error": kind, "message": message, "hint": hint,
                                     "exit_code": code, **details}, default=str) + "\n")
    raise typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command, mapping errors to one message and an exit code, never a traceback.
    Exit codes: 0 ok, 1 a failure while running, 2 bad input, 3 a CI gate failed, 130
    interrupted. DISTILL_DEBUG=1 lets the traceback through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        if os.environ.get("DISTILL_DEBUG") == "1":
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except DistillError as e:
            _fail(type(e).__name__, e.message, e.hint, e.exit_code, as_json, getattr(e, "details", None))
        except KeyboardInterrupt:
            _fail("Interrupted", "interrupted", None, 130, as_json)
        except typer.Exit:
            raise
        except RecursionError:
            _fail("InputError", "the input is nested too deeply to process", "simplify the recipe or file", 2, as_json)
        except OSError as e:
            where = f" {e.filename}" if getattr(e, "filename", None) else ""
            _fail("OutputError", f"cannot access{where}: {e.strerror or e}",
                  "check the path, its permissions and free disk space; files already written are intact", 2, as_json)
        except Exception as e:  # a bug: say so briefly; the traceback is one variable away
            _fail("Bug", f"{type(e).__name__}: {e}", "this is a bug in distillcli; rerun with DISTILL_DEBUG=1 "
                  "for the traceback and report it", 1, as_json)

    return wrapper


def step_options(config: type[Any], command: str, **values: Any) -> Any:
    """A step's options from command-line values; a bad value is an OptionError (exit 2)."""
    from pydantic import ValidationError

    from distillcli.errors import OptionError

    try:
        return config(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        problems = "; ".join(
            (f"--{'.'.join(map(str, err['loc'])).replace('_', '-')}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ") for err in e.errors())
        raise OptionError(f"invalid options: {problems}", f"see `distill {command} --help`") from None


def progress_for(quiet: bool, as_json: bool) -> Any:
    """Progress on stderr: none with --quiet; plain lines with --json (CI logs), else a live bar on a terminal."""
    from distillcli.progress import LineProgress, SilentProgress, make_progress

    if quiet:
        return SilentProgress()
    return LineProgress() if as_json else make_progress(False)


def refuse_overwrite(path: Path, force: bool) -> None:
    """An output file that exists is replaced only with --force."""
    from distillcli.errors import RunDirError

    if path.exists() and not force:
        raise RunDirError(f"{path} already exists", "choose another output path, or add --force to replace it")
