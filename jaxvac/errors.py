"""The errors a user can cause, and the stop a user can ask for.

Every error that a user can cause and fix (a config value, an input, an output folder, a
checkpoint, a table) derives from :class:`JaxvacError`; its message is one line that names the
file or key, the rule, what was received and what to do. The command line catches it once, for
every command, and prints ``jaxvac <command>: <message>`` with exit status 2; anything else is a
bug or an environment problem and is reported with a saved traceback (``jaxvac --debug`` prints
it). The classes keep their older bases too (``ConfigError`` is still a ``ValueError``), so code
that caught those goes on working:

    JaxvacError
    ├── ConfigError        (ValueError)   jaxvac/config.py
    ├── InputError         (ValueError)   jaxvac/io/inputs.py
    ├── TableError         (ValueError)   jaxvac/io/tables.py
    ├── StoreError         (ValueError)   jaxvac/io/store.py
    ├── StreamError        (RuntimeError) jaxvac/io/stream.py
    ├── DatasetError       (ValueError)   jaxvac/train/dataset.py
    ├── CheckpointError    (ValueError)   jaxvac/train/checkpoint.py
    ├── ManifestMismatch   (RuntimeError) jaxvac/run/parts.py
    ├── PartsError         (RuntimeError) jaxvac/run/parts.py
    └── OutputError                       jaxvac/run/output.py
        └── OutputLocked

:class:`Interrupted` is not an error: SIGINT or SIGTERM asked the process to stop
(``jaxvac.interrupts``). It derives from KeyboardInterrupt, so ``except Exception`` blocks do not
swallow it and ``finally`` blocks run.
"""

from __future__ import annotations

import signal

__all__ = ["Interrupted", "JaxvacError"]


class JaxvacError(Exception):
    """An error the user can fix; ``str(error)`` is one line saying what and how."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which. Raised in the main thread."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def __str__(self) -> str:
        return f"interrupted ({self.name})"
