"""SIGINT and SIGTERM stop a command cleanly, and in bounded time.

A batch system ends a job with SIGTERM (then SIGKILL); a user with Ctrl-C. Inside
:func:`stop_on_signals` both raise :class:`jaxvac.errors.Interrupted` in the main thread, so
``finally`` blocks and context managers run as the exception unwinds: the reader stops its
workers and unlinks its shared memory, a half-written part's temporary is removed, the output
lock is released. The parts already written stay (each is atomic), so rerunning the same command
continues.

Python runs a signal handler only between bytecodes of the main thread; while the main thread
sits in one long C call (an XLA compilation, a wait on the device) the exception would wait too.
So a watchdog thread, woken by the signal itself (``signal.set_wakeup_fd``), ends the process with
``os._exit(128 + signum)`` if it is still running ``grace_s`` after the signal, or at once on a
second signal. That is as safe as SIGKILL, which a run is built to survive: parts and catalogues
are written atomically, reader workers exit with their parent (``jaxvac.io.lifetime``) and the
resource tracker unlinks the shared memory.

Only the command line installs this (signal handlers belong to the program, not to a library).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

from jaxvac.errors import Interrupted

__all__ = ["GRACE_S", "stop_on_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 1.0  # s from the signal to the forced exit; a clean stop takes ~0.1-0.5 s


@contextlib.contextmanager
def stop_on_signals(last_words: Callable[[int], str], grace_s: float = GRACE_S) -> Iterator[None]:
    """SIGINT/SIGTERM raise ``Interrupted`` inside the block; the process ends ``grace_s`` later
    (or at a second signal) if the block has not finished, after writing ``last_words(signum)``
    and a newline to stderr; its exit status is then 128 + signum (130 SIGINT, 143 SIGTERM).

    A signal that lands in a garbage-collector callback or a ``__del__`` (JAX has both) would
    raise where Python swallows exceptions (printing "Exception ignored in ..."): there the
    exception is withheld from sys.unraisablehook and raised again in the main thread a moment
    later (``_thread.interrupt_main``).

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _State()
    receive, send = socket.socketpair()
    send.setblocking(False)
    old_handlers = {s: signal.getsignal(s) for s in SIGNALS}
    old_hook = sys.unraisablehook
    old_fd = signal.set_wakeup_fd(send.fileno(), warn_on_full_buffer=False)
    watchdog = threading.Thread(target=_watch, args=(receive, grace_s, last_words, state), daemon=True,
                                name="jaxvac-signal-watchdog")

    def unraisable(u):
        if isinstance(u.exc_value, Interrupted) and state.signum is not None:
            # Raised again from outside, a moment later: by then the main thread has left the
            # callback that swallowed it (if not, this hook runs again, until the grace time).
            # A re-delivery that arrives while this hook runs is deferred to its end (raised
            # here, it would be swallowed again, with a traceback on stderr).
            state.in_hook = True
            try:
                state.schedule()
            finally:
                state.in_hook = False
                if state.deferred:
                    state.deferred = False
                    state.schedule()
            return
        old_hook(u)

    try:
        for s in SIGNALS:
            signal.signal(s, state.handler)
        sys.unraisablehook = unraisable
        watchdog.start()
        yield
    finally:
        state.active = False
        for s, h in old_handlers.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        sys.unraisablehook = old_hook
        signal.set_wakeup_fd(old_fd)
        send.close()  # the watchdog reads end-of-file and returns without ending the process
        if watchdog.is_alive():
            watchdog.join()
        receive.close()


class _State:
    """The first signal, and the re-deliveries of an exception Python swallowed."""

    def __init__(self):
        self.signum: int | None = None
        self.pending = 0  # re-deliveries whose wakeup byte the watchdog has not yet seen
        self.reraise = 0  # re-deliveries the handler has not yet raised
        self.lock = threading.Lock()
        self.active = True  # False once the block has ended: nothing is re-delivered then
        self.in_hook = False  # the main thread is inside sys.unraisablehook
        self.deferred = False  # a re-delivery arrived there and waits for the hook's end

    def schedule(self):
        """Re-deliver the interrupt to the main thread in 10 ms."""
        with self.lock:
            self.pending += 1  # its wakeup byte is not a second signal
        threading.Timer(0.01, self.redeliver).start()

    def redeliver(self):
        if self.active:
            _thread.interrupt_main(self.signum)

    def handler(self, signum, frame):
        if self.signum is None:  # the first signal raises; a second one is the watchdog's
            self.signum = signum
            raise Interrupted(signum)
        with self.lock:
            again = self.reraise < self.pending
            self.reraise += again
        if again:
            if self.in_hook:
                self.deferred = True
                return
            raise Interrupted(self.signum)


def _watch(receive: socket.socket, grace_s: float, last_words: Callable[[int], str], state: _State) -> None:
    """Wait for a signal byte; then end the process unless the block finishes within grace_s
    (at once on a second signal)."""
    try:
        first = receive.recv(1)
    except OSError:
        return
    if not first:
        return  # the block ended without a signal
    signum = first[0]
    seen = 0
    deadline = time.monotonic() + grace_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        receive.settimeout(left)
        try:
            more = receive.recv(1)
        except TimeoutError:
            break
        except OSError:
            return
        if not more:
            return  # the block ended in time: the command prints its own line
        with state.lock:
            if seen < state.pending:  # a re-delivery, not a second signal
                seen += 1
                continue
        break  # a second signal: stop now
    with contextlib.suppress(Exception):
        os.write(2, (last_words(signum) + "\n").encode("utf-8", "replace"))
    os._exit(128 + signum)
