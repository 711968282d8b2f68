"""`jaxvac train --config demo` (a built-in name or a TOML path): one network per label of the config and the VMP network."""

from __future__ import annotations

import sys

import click


class _TrainDisplay:
    """One rich bar for the run and a per-label validation-loss table, on stderr when a terminal."""

    def __init__(self, enabled: bool, stages: dict[str, list[str]], every: int = 5):
        self.enabled = enabled
        self.stages = stages  # stage -> the names of its networks (stage_names)
        self.every = every
        self.stage = ""
        self.stage_offset = 0
        self.live = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console, Group
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._group = Group
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("epochs"), TimeElapsedColumn())
            self.task = self.bar.add_task("training", total=None)
            self.table = None
            self.live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4)
            self.live.start()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.stop()
        return False

    def _render(self):
        return self._group(self.bar, self.table) if self.table is not None else self._group(self.bar)

    def on_stage(self, name: str, max_epochs: int, n_spectra: int = 0):
        self.stage = name
        if self.live is not None:
            done = self.bar.tasks[0].completed
            self.stage_offset = done
            self.bar.update(self.task, description=f"training: {name}", total=done + max_epochs)

    def on_epoch(self, info):
        if self.live is None:
            return
        from rich.table import Table

        self.bar.update(self.task, completed=self.stage_offset + info.epoch)
        if info.epoch % self.every == 0 or info.stopped.all() or info.epoch == 1:
            names = self.stages.get(self.stage, [])
            if len(names) != len(info.val_loss):
                names = [f"{self.stage}[{i}]" for i in range(len(info.val_loss))]
            t = Table(title=f"{self.stage}: epoch {info.epoch} validation loss (standardised units)", box=None)
            for col in ("label", "train", "val", "best", "best epoch", ""):
                t.add_column(col, justify="right" if col not in ("label", "") else "left")
            for i, n in enumerate(names):
                t.add_row(n, f"{info.train_loss[i]:.4f}", f"{info.val_loss[i]:.4f}", f"{info.best_val[i]:.4f}",
                          str(info.best_epoch[i]), "stopped" if info.stopped[i] else "")
            self.table = t
        self.live.update(self._render())


def _labels_and_magnitude_set(cfg):
    """(LabelSchema of the config, its [curation] magnitude_set)."""
    from jaxvac.config import section
    from jaxvac.labels import LabelSchema
    from jaxvac.train.dataset import CurationConfig

    return LabelSchema.from_config(cfg), section(cfg, "curation", CurationConfig).magnitude_set


def stage_names(cfg) -> dict[str, list[str]]:
    """Training stage -> the label names of its networks, in member order: "ensemble" (every
    label), "retrain" (the [curation] magnitude_set's) and "vmp" (the VMP label)."""
    schema, mag = _labels_and_magnitude_set(cfg)
    return {"ensemble": list(schema.names), "retrain": [schema.names[i] for i in schema.of_set(mag)],
            "vmp": [schema.vmp.label.name] if schema.vmp else []}


def epoch_log(stream, cfg=None, min_interval: float = 1.0):
    """The off-terminal epoch lines (jaxvac.display.progress.EpochLog) with the loss averaged per
    training set: every network by its set, the retrained magnitudes, the VMP network.
    cfg: the loaded config (default: the built-in dr8 recipe)."""
    from jaxvac.config import recipe
    from jaxvac.display.progress import EpochLog

    schema, mag = _labels_and_magnitude_set(recipe() if cfg is None else cfg)
    sets = [(s, schema.of_set(s)) for s in schema.sets]
    groups = {"ensemble": sets, "retrain": [(mag, list(range(len(schema.of_set(mag)))))], "vmp": [("VMP", [0])]}
    return EpochLog(stream, groups, min_interval=min_interval)


@click.command("train")
@click.option("--config", "config_path", required=True, help="Recipe: a built-in config name (demo, dr8) or a path to a TOML file, which may say base = \"demo.toml\" and override keys.")
@click.option("--data", "data_dir", default=None, help="Survey directory holding the catalogues (overrides [train] data_dir).")
@click.option("--out", "out_dir", default=None, help="Run directory for checkpoint/, report.md and plots (overrides [train] out_dir).")
@click.option("--progress/--no-progress", default=None, help="Progress display (default: only on a terminal).")
def command(config_path, data_dir, out_dir, progress):
    """Train one network per label ([labels] of the sets in [train.catalogs]: the paper's 23 with
    dr8/demo) and the very-metal-poor network, evaluate them on the test catalogue and save an
    orbax checkpoint (see docs/training.md).

    Writes OUT/checkpoint/, report.md (test residuals per SNR bin beside the paper's),
    residuals.png and metrics.json.

    Every input is checked before the first epoch (an error names the config key and the fix;
    no run folder is left). Off a terminal, one line per epoch goes to stderr. A failed
    evaluation on the test catalogue prints a warning; the checkpoint is kept and the exit
    status is 0 (docs/training.md "Before the first epoch").

    \b
    Examples:
      jaxvac simulate --n 2000 --out sim
      jaxvac train --config demo --data sim --out sim_run      # small networks, minutes on a CPU
      jaxvac train --config dr8 --data dr8_train --out runs/dr8   # the paper's networks
      jaxvac train --config my.toml --data sim --out run2      # my.toml: base = "demo.toml" + changes
    """
    from jaxvac.cli import on_interrupt
    from jaxvac.config import load_config
    from jaxvac.display.progress import progress_wanted
    from jaxvac.train.job import train_from_config

    on_interrupt("no checkpoint was written; spectra already normalised stay in the [train] cache_dir, so "
                 "rerunning the same command skips reading them, but training restarts from the first epoch")
    cfg = load_config(config_path)
    show = progress_wanted(progress)
    if show:  # a terminal: the live bar and table
        with _TrainDisplay(True, stage_names(cfg)) as disp:
            res = train_from_config(cfg, data_dir=data_dir, out_dir=out_dir, on_stage=disp.on_stage,
                                    on_epoch=disp.on_epoch, progress=True)
    else:  # a log or a pipe: one plain line per epoch on stderr, unless --no-progress
        log = epoch_log(sys.stderr, cfg) if progress is not False else None
        res = train_from_config(cfg, data_dir=data_dir, out_dir=out_dir, on_stage=log and log.on_stage,
                                on_epoch=log and log.on_epoch, progress=False)
    for n in res.notes:
        if n.removeprefix("WARNING ") not in res.warnings:
            click.echo(f"note: {n}", err=True)
    for w in res.warnings:  # e.g. the evaluation failed after training; the checkpoint is saved, exit 0
        click.echo(f"warning: {w}", err=True)
    if res.table:
        click.echo(res.table)
    click.echo(f"checkpoint: {res.checkpoint}\nreport: {res.report}")
    sys.stdout.flush()
