"""One exception family. Every message names the cause and ends with what to do next.

Only the CLI turns these into text on stderr and an exit code: user errors (bad recipe,
missing or corrupt file, bad option, missing data) exit 2; a failure while running exits 1.
"""

from __future__ import annotations


class DistillError(Exception):
    """Base of every error the user can cause or act on."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\n  -> {self.hint}" if self.hint else self.message


class RecipeError(DistillError):
    """The recipe (or a --set override) is invalid. Carries every problem found."""

    def __init__(self, problems: list[str], source: str = "recipe", hint: str | None = None) -> None:
        self.problems = problems
        body = "\n".join(f"  {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(
            f"{source}: {len(problems)} {noun}\n{body}",
            hint or "fix the keys above (`distill schema` lists every valid key), then rerun",
        )


class UnknownNameError(DistillError):
    """A registry lookup (model, dataset, step, loss ...) failed."""


class NothingFound(DistillError):
    """A search or listing matched nothing (exit 1, as grep does)."""

    exit_code = 1


class ModelFileError(DistillError):
    """A model file or checkpoint is missing, corrupt, unsafe or does not fit the model."""


class DataError(DistillError):
    """A dataset is missing, malformed or does not fit the model."""


class OptionError(DistillError):
    """A command-line option or step option has a bad value."""


class CompressionError(DistillError):
    """A compression cannot be applied as asked (e.g. an op that cannot be quantized)."""


class TargetUnreachable(CompressionError):
    """A pruning target past what the layers allowed to shrink can give; ``reachable``: the most they give."""

    def __init__(self, message: str, hint: str, reachable: float) -> None:
        super().__init__(message, hint)
        self.reachable = reachable


class RunFailure(DistillError):
    """Something failed while running (not the user's input): exit code 1."""

    exit_code = 1


class Interrupted(DistillError):
    """The user stopped the run (Ctrl-C); a checkpoint was kept. Exit code 130."""

    exit_code = 130


class RunDirError(DistillError):
    """The output directory cannot be used as asked (it holds another run, or no run to resume)."""


class GateFailed(DistillError):
    """A CI gate (--min-top1, --max-drop) was not met. Exit code 3."""

    exit_code = 3


class OutputError(DistillError):
    """A file cannot be written (disk full, no permission, read-only, path too long ...)."""
