"""A progress bar for reading many files or spectra: rate, rejects and ETA on stderr, quiet off a terminal;
and :class:`EpochLog`, the plain per-epoch training lines written instead of a display off a terminal."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

__all__ = ["EpochLog", "FileProgress", "progress_wanted"]


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


class EpochLog:
    """One plain line per training epoch for a log or a pipe (no control characters).

    Line format (docs/training.md "Epoch lines off a terminal")::

        train ensemble epoch 12/400: loss train/val PASTEL 0.1234/0.1456 APOGEE ... LGMWAS ...; 21/23 nets training; 5,120 spectra/s; ETA <= 3m05s

    loss: mean over the set's networks of the epoch's training loss and validation loss
    (standardised label units); spectra/s: spectra x epochs of this stage per second of wall time;
    ETA: time left if the stage runs to max_epochs (an upper bound: early stopping ends it sooner).
    A line is written every epoch, but at most one per ``min_interval`` seconds (the first and the
    last epoch of a stage always).

    groups: stage name -> list of (set name, member indices) to average over ("vmp": one member).
    """

    def __init__(self, stream, groups: dict[str, list[tuple[str, list[int]]]], *, min_interval: float = 1.0,
                 clock=None):
        import time

        self.stream = stream
        self.groups = groups
        self.min_interval = float(min_interval)
        self.clock = clock or time.perf_counter
        self.stage, self.n_spectra, self.t0, self.last = "", 0, 0.0, None

    def on_stage(self, name: str, max_epochs: int, n_spectra: int = 0) -> None:
        self.stage, self.n_spectra, self.t0, self.last = name, int(n_spectra), self.clock(), None

    def on_epoch(self, info) -> None:
        now = self.clock()
        final = info.epoch >= info.max_epochs or bool(info.stopped.all())
        if not (info.epoch == 1 or final or self.last is None or now - self.last >= self.min_interval):
            return
        self.last = now
        self.stream.write(self.line(info, now - self.t0) + "\n")
        self.stream.flush()

    def line(self, info, elapsed: float) -> str:
        import numpy as np

        m = len(info.val_loss)
        groups = self.groups.get(self.stage) or [(self.stage or "all", list(range(m)))]
        losses = " ".join(f"{name} {np.mean(info.train_loss[idx]):.4g}/{np.mean(info.val_loss[idx]):.4g}"
                          for name, idx in groups if idx and max(idx) < m)
        per_epoch = elapsed / max(info.epoch, 1)
        rate = self.n_spectra * info.epoch / elapsed if elapsed > 0 else float("nan")
        left = 0.0 if info.stopped.all() else per_epoch * (info.max_epochs - info.epoch)
        return (f"train {self.stage} epoch {info.epoch}/{info.max_epochs}: loss train/val {losses}; "
                f"{int((~np.asarray(info.stopped, bool)).sum())}/{m} nets training; "
                f"{rate:,.0f} spectra/s; ETA <= {_hms(left)}")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
