"""Options shared by several commands, declared once; and the error guard every command uses."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

import typer

from distillcli.errors import DistillError

DeviceOpt = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps")
RecipeDeviceOpt = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N | mps (overrides the recipe)")
DataOpt = typer.Option(None, "--data", help="dataset name (default: the one recorded in the file)")
DataRootOpt = typer.Option(None, "--data-root", help="dataset folder")
JsonOpt = typer.Option(False, "--json", help="print one JSON object on stdout (for scripts)")
QuietOpt = typer.Option(False, "--quiet", "-q", help="no progress output")
SetOpt = typer.Option(None, "--set", help="override a recipe key: --set steps.0.epochs=1 (repeatable)")


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command, mapping errors to one message and an exit code, never a traceback.
    DISTILL_DEBUG=1 lets the traceback through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("DISTILL_DEBUG") == "1":
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except DistillError as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except typer.Exit:
            raise
        except RecursionError:
            _fail("the input is nested too deeply to process\n  -> simplify the recipe or file", 2)
        except OSError as e:
            where = f" {e.filename}" if getattr(e, "filename", None) else ""
            _fail(f"cannot access{where}: {e.strerror or e}\n  -> check the path, its permissions and free disk "
                  "space; files already written are intact", 2)
        except Exception as e:  # a bug: say so briefly; the traceback is one variable away
            _fail(f"{type(e).__name__}: {e}\n  -> this is a bug in distillcli; rerun with DISTILL_DEBUG=1 "
                  "for the traceback and report it", 1)

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
