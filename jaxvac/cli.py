"""The `jaxvac` command line. Thin: each command parses, calls one library function, prints.

Commands live in ``jaxvac/commands/<name>.py`` as a click command named ``command`` and are
imported only when used, so ``jaxvac --help`` stays fast.
"""

from __future__ import annotations

import importlib

import click

# name -> module under jaxvac.commands (one line each; keep sorted).
COMMANDS = {
    "calibrate-errors": "calibrate_errors",
    "demo": "demo",
    "info": "info",
    "merge": "merge",
    "pack": "pack",
    "report": "report",
    "run": "run",
    "simulate": "simulate",
    "train": "train",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"jaxvac.commands.{COMMANDS[name]}").command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jaxvac")
def main():
    """jaxvac: stellar labels for LAMOST low-resolution spectra (the DR8 value-added catalogue
    method of Wang, Huang, Yuan, Zhang, Xiang & Liu 2022), in JAX.

    \b
    Typical session:
      jaxvac info ../shared/lamost            # what is in a directory of spectra
      jaxvac simulate --n 2000 --out sim/     # a synthetic survey with known labels
      jaxvac train --config configs/demo.toml # the 23 networks + the VMP network
    Run `jaxvac COMMAND --help` for each command.
    """


if __name__ == "__main__":
    main()
