"""A progress bar for reading many files or spectra: rate, rejects and ETA on stderr, quiet off a terminal."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

__all__ = ["FileProgress", "progress_wanted"]


def progress_wanted(progress: bool | None, stream=None) -> bool:
    """Whether to draw a bar: never when ``progress`` is False, and only when stderr is a terminal.

    progress: True or None (the default of callers) means "when stderr is a terminal"; logs and
    pipes thus never receive control characters.
    """
    if progress is False:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class FileProgress:
    """Counts files done and rejected; draws a rich bar only when ``enabled``.

    Use as a context manager; ``advance(files, rejects)`` after each chunk of files.
    """

    def __init__(self, total: int, *, enabled: bool, description: str = "reading", unit: str = "files"):
        self.total = total
        self.done = 0
        self.rejects = 0
        self._bar = None
        self._task = None
        if enabled:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(unit),
                TextColumn("{task.fields[rejects]} rejects"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task(description, total=total, rejects=0)

    def __enter__(self):
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def advance(self, files: int, rejects: int = 0) -> None:
        self.done += files
        self.rejects += rejects
        if self._bar is not None:
            self._bar.update(self._task, advance=files, rejects=self.rejects)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class _RateColumn(ProgressColumn):
    """Items (files, spectra) per second, as rich estimates it over its recent window."""

    def __init__(self, unit: str = "files"):
        super().__init__()
        self.unit = unit

    def render(self, task):
        speed = task.finished_speed or task.speed
        return Text(f"-- {self.unit}/s" if speed is None else f"{speed:,.0f} {self.unit}/s")
