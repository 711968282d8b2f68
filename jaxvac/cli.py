"""The `jaxvac` command line. Thin: each command parses, calls one library function, prints.

Commands live in ``jaxvac/commands/<name>.py`` as a click command named ``command`` and are
imported only when used, so ``jaxvac --help`` stays fast.

What goes wrong is handled here once, for every command (docs/running.md):

    exit 0     done
    exit 2     an error the user can fix (``jaxvac.errors.JaxvacError``, a path that cannot be
               written or found, bad usage): one line ``jaxvac <command>: <what and what to do>``
    exit 1     anything else (a bug): one line with the exception and the path of a file holding
               the traceback; ``jaxvac --debug <command>`` prints the traceback instead
    exit 130   SIGINT (Ctrl-C), 143 SIGTERM: one line saying what was kept and how to continue
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import signal
import sys
import tempfile
import time
import traceback

import click

# name -> module under jaxvac.commands (one line each; keep sorted).
COMMANDS = {
    "calibrate-errors": "calibrate_errors",
    "demo": "demo",
    "index": "index",
    "info": "info",
    "merge": "merge",
    "pack": "pack",
    "report": "report",
    "run": "run",
    "simulate": "simulate",
    "train": "train",
    "trainset": "trainset",
}


USER_ERROR, BUG = 2, 1  # exit statuses; an interrupt exits with 128 + the signal number
_KEPT = "jaxvac.kept"  # ctx.meta key: what an interrupted command keeps (see on_interrupt)
# OSErrors the user or the machine causes (a folder that cannot be written, a missing path, a
# full disk), reported in one line like a JaxvacError.
_USER_ERRNOS = {errno.EACCES: "check its permissions or choose another path",
                errno.EPERM: "check its permissions or choose another path",
                errno.EROFS: "it is on a read-only file system; choose another path",
                errno.ENOSPC: "free some space or choose another place",
                errno.EDQUOT: "free some space (disk quota) or choose another place",
                errno.ENOENT: "check the path", errno.ENOTDIR: "check the path",
                errno.EISDIR: "give a file, not a folder"}


def on_interrupt(kept: str) -> None:
    """Say what a SIGINT/SIGTERM would leave behind, e.g. "progress saved in X.parts/; rerun the
    same command to continue". Called by a command before its work starts."""
    click.get_current_context().meta[_KEPT] = kept


def one_line(text: str) -> str:
    """A message on one line (line breaks and the spaces around them become one space)."""
    return re.sub(r"\s*\n\s*", " ", str(text).strip())


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"jaxvac.commands.{COMMANDS[name]}").command

    def invoke(self, ctx):
        from jaxvac.errors import JaxvacError
        from jaxvac.interrupts import stop_on_signals

        def interrupted(signum: int) -> str:
            kept = ctx.meta.get(_KEPT, "stopped before it began; rerun the same command")
            return f"{_prefix(ctx)}interrupted ({signal.Signals(signum).name}): {kept}"

        debug = ctx.params.get("debug", False)
        with stop_on_signals(interrupted):
            try:
                return super().invoke(ctx)
            except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except KeyboardInterrupt as e:  # Ctrl-C, or jaxvac.errors.Interrupted (SIGINT, SIGTERM)
                signum = getattr(e, "signum", signal.SIGINT)
                click.echo(interrupted(signum), err=True)
                ctx.exit(128 + signum)
            except JaxvacError as e:
                _fail(ctx, e, one_line(e), USER_ERROR, debug)
            except OSError as e:
                if e.errno in _USER_ERRNOS and e.filename is not None:
                    _fail(ctx, e, f"{e.strerror}: {os.fsdecode(e.filename)!r}; {_USER_ERRNOS[e.errno]}.",
                          USER_ERROR, debug)
                _unexpected(ctx, e, debug)
            except Exception as e:  # noqa: BLE001 - the one place that reports what nobody expected
                _unexpected(ctx, e, debug)


def _prefix(ctx) -> str:
    return f"jaxvac {ctx.invoked_subcommand}: " if ctx.invoked_subcommand else "jaxvac: "


def _fail(ctx, error: BaseException, message: str, status: int, debug: bool):
    if debug:
        traceback.print_exception(error)
    click.echo(f"{_prefix(ctx)}{message}", err=True)
    ctx.exit(status)


def _unexpected(ctx, error: BaseException, debug: bool):
    """One line naming the exception and where its traceback was saved (or the traceback, --debug)."""
    summary = f"unexpected {type(error).__name__}: {one_line(error)[:300]}"
    if debug:
        _fail(ctx, error, summary, BUG, debug)
    text = (f"jaxvac {ctx.invoked_subcommand or ''} failed at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            f"command: {' '.join(sys.argv)}\ncwd: {os.getcwd()}\n\n"
            + "".join(traceback.format_exception(error)))
    try:
        fd, path = tempfile.mkstemp(prefix=f"jaxvac-{ctx.invoked_subcommand or 'error'}-", suffix=".traceback.txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        where = f"traceback saved in {path}"
    except OSError:
        where = "the traceback could not be saved"
    _fail(ctx, error, f"{summary} ({where}; rerun with `jaxvac --debug ...` to print it). "
                      f"This is probably a bug: please report it with that file.", BUG, debug)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jaxvac")
@click.option("--debug", is_flag=True, help="Print the full traceback of any error (they are one line otherwise).")
def main(debug):
    """jaxvac: stellar labels for LAMOST low-resolution spectra (the DR8 value-added catalogue
    method of Wang, Huang, Yuan, Zhang, Xiang & Liu 2022), in JAX.

    \b
    Typical session:
      jaxvac info ../shared/lamost                  # what is in a directory of spectra
      jaxvac simulate --n 2000 --out sim            # a synthetic survey with known labels
      jaxvac train --config demo --data sim --out run        # the 23 networks + the VMP network
      jaxvac run --model run/checkpoint --input sim/spectra --out cat.fits --config demo
      jaxvac report cat.fits                        # plots, tables and provenance: cat_report/index.html
    With your own reference catalogue: jaxvac index, jaxvac trainset, then train and run.
    Run `jaxvac COMMAND --help` for each command.
    """


if __name__ == "__main__":
    main()
