"""Progress output for long loops: a rich bar on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from pathlib import Path
from typing import Protocol, TextIO


class Progress(Protocol):
    def start(self, title: str, total: int) -> None: ...

    def update(self, done: int, **stats: float) -> None: ...

    def finish(self, **stats: float) -> None: ...

    def message(self, text: str) -> None: ...


def _fmt(stats: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in stats.items())


class SilentProgress:
    def start(self, title: str, total: int) -> None:
        pass

    def update(self, done: int, **stats: float) -> None:
        pass

    def finish(self, **stats: float) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class LineProgress:
    """One line per finished loop: what CI logs and pipes want."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.title = ""
        self.t0 = 0.0

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr  # looked up late: tests and callers may swap stderr

    def start(self, title: str, total: int) -> None:
        self.title, self.t0 = title, time.perf_counter()

    def update(self, done: int, **stats: float) -> None:
        pass

    def finish(self, **stats: float) -> None:
        print(f"{self.title}  {_fmt(stats)}  ({time.perf_counter() - self.t0:.1f}s)", file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class RichProgress:
    """A live bar with loss, accuracy and throughput; finished loops stay as one line."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as _P, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self._bar = _P(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), console=self.console,
                       transient=True)
        self._task: int | None = None
        self.title = ""
        self.t0 = 0.0

    def start(self, title: str, total: int) -> None:
        self.title, self.t0 = title, time.perf_counter()
        if self._task is None:
            self._bar.start()
        else:
            self._bar.remove_task(self._task)
        from rich.markup import escape

        self._task = self._bar.add_task(escape(title), total=total, stats="")

    def update(self, done: int, **stats: float) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=done, stats=_fmt(stats))

    def finish(self, **stats: float) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
            self._bar.stop()
            self._task = None
        self.console.print(f"{self.title}  {_fmt(stats)}  ({time.perf_counter() - self.t0:.1f}s)", markup=False,
                           highlight=False)

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)


def make_progress(quiet: bool) -> Progress:
    if quiet:
        return SilentProgress()
    return RichProgress() if sys.stderr.isatty() else LineProgress()


class LoggedProgress:
    """Forwards to the user's progress display and appends finished loops to run.log."""

    def __init__(self, inner: Progress, log: Path | None) -> None:
        self.inner, self.log = inner, log
        self.title = ""

    def _write(self, text: str) -> None:
        if self.log is not None and self.log.parent.is_dir():
            with self.log.open("a", encoding="utf-8") as f:
                f.write(f"{_dt.datetime.now().isoformat(timespec='seconds')} {text}\n")

    def start(self, title: str, total: int) -> None:
        self.title = title
        self.inner.start(title, total)

    def update(self, done: int, **stats: float) -> None:
        self.inner.update(done, **stats)

    def finish(self, **stats: float) -> None:
        self._write(self.title + "  " + "  ".join(f"{k} {v:.4g}" for k, v in stats.items()))
        self.inner.finish(**stats)

    def message(self, text: str) -> None:
        self._write(text)
        self.inner.message(text)
