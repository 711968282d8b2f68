"""`jaxvac info PATH...`: what is in a set of LAMOST files, one line per spectrum and a summary."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

_HEADINGS = ("file", "layout", "release", "npix", "offset", "obsid", "class", "subclass", "snrg",
             "rv km/s", "bad")


def _cells(row: dict) -> tuple[str, ...]:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    return (row["path"], row["layout"], row["release"] or "-", str(row["npix"]),
            str(row["offset"]), "-" if row["obsid"] < 0 else str(row["obsid"]),
            row["class"] or "-", row["subclass"] or "-", num(row["snrg"], ".2f"),
            num(row["rv"], ".1f"), num(row["bad_fraction"], ".3f"))


def _counts(counts: dict) -> str:
    return ", ".join(f"{k or '(none)'} {v}" for k, v in counts.items()) or "-"


@click.command(name="info")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document {spectra, rejects, summary} instead of tables.")
@click.option("--engine", type=click.Choice(["fast", "fitsio"]), default="fast",
              show_default=True, help="FITS reader: jaxvac's fast reader or fitsio (the reference).")
def command(paths, as_json, engine):
    """Describe LAMOST LRS spectra: one line per file and a summary.

    PATH is a .fits/.fits.gz file or a directory (searched recursively). Per spectrum: layout
    (image or table), release (DATA_V), pixels in the file, offset on the global 3909-pixel grid,
    obsid, class, subclass, g-band S/N, radial velocity (Z * c, km/s) and the fraction of the
    3909 grid pixels that are bad or not covered. Then counts by layout, release and class, and
    every file that could not be used with the reason. The exit status is 0 even when files are
    rejected (they are listed); 2 for bad usage.

    \b
    Examples:
      jaxvac info ../shared/lamost
      jaxvac info spec-55859-F5902_sp03-232.fits.gz
      jaxvac info --json ../shared/lamost > inventory.json
    """
    from jaxvac.cli import on_interrupt
    from jaxvac.io.inputs import InputError
    from jaxvac.io.lamost import describe

    on_interrupt("nothing to resume (info writes no files); rerun the same command")

    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"no such file or directory: {', '.join(map(repr, missing))}; give .fits/.fits.gz files "
                         f"or folders holding them.")
    report = describe(paths, engine=engine)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    s = report["summary"]
    summary = [("files", str(s["files"])), ("spectra", str(s["spectra"])),
               ("rejects", str(s["rejects"])), ("layout", _counts(s["by_layout"])),
               ("release", _counts(s["by_release"])), ("class", _counts(s["by_class"]))]
    if s["rejects"]:
        summary.append(("reject kinds", _counts(s["by_reason"])))
    if sys.stdout.isatty() and shutil.get_terminal_size().columns >= 110:  # room for 11 columns
        _print_rich(report, summary)
        return
    click.echo("\t".join(_HEADINGS))
    for row in report["spectra"]:
        click.echo("\t".join(_cells(row)))
    for r in report["rejects"]:
        click.echo(f"REJECT\t{r['path']}\t{r['reason']}")
    for name, value in summary:
        click.echo(f"# {name}: {value}")


def _print_rich(report: dict, summary: list) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    # The file name only (directories make the table too wide); it alone folds on narrow screens.
    rows = [(Path(row["path"]).name, c[1], c[2].removeprefix("LAMOST "), *c[3:])
            for row in report["spectra"] for c in [_cells(row)]]
    table = Table(box=box.SIMPLE, title="LAMOST spectra", pad_edge=False)
    for k, h in enumerate(_HEADINGS):
        widest = max([len(h.split()[0])] + [len(r[k]) for r in rows])
        table.add_column(h, no_wrap=k > 0, overflow="fold", min_width=12 if k == 0 else widest,
                         justify="left" if h in ("file", "layout", "release", "class",
                                                 "subclass") else "right")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    if report["rejects"]:
        rejects = Table(box=box.SIMPLE, title="Rejected files")
        rejects.add_column("file")
        rejects.add_column("reason", style="red")
        for r in report["rejects"]:
            rejects.add_row(r["path"], r["reason"])
        console.print(rejects)
    for name, value in summary:
        console.print(f"[bold]{name}[/bold]: {value}", highlight=False)
