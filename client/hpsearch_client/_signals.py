"""SIGTERM (and SIGINT) turned into ``KeyboardInterrupt`` in the main thread, so that a
stopped process hands its trial back: for ``Study.trials()`` and for ``hpsearch-agent``.
Elsewhere than in the main thread both leave the handlers alone."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Signals", "interrupts", "stop_signals"]


class Signals:
    """The signal that raised ``KeyboardInterrupt``, once one has."""

    signum: int | None = None


@contextlib.contextmanager
def interrupts() -> Iterator[Signals]:
    """In the main thread: SIGTERM (and SIGINT, if it has Python's default handler) raise
    KeyboardInterrupt and are remembered; the previous handlers come back afterwards."""
    seen = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        seen.signum = signum
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous_term = signal.signal(signal.SIGTERM, interrupt)
    previous_int = signal.getsignal(signal.SIGINT)
    own_int = previous_int is signal.default_int_handler
    if own_int:
        signal.signal(signal.SIGINT, interrupt)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous_term is None else previous_term)
        if own_int:
            signal.signal(signal.SIGINT, previous_int)


@contextlib.contextmanager
def stop_signals() -> Iterator[Signals]:
    """SIGTERM and SIGINT raise KeyboardInterrupt in the main thread, the first one only (the
    clean-up after it must not be cut short), and are remembered."""
    seen = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        if seen.signum is None:
            seen.signum = signum
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield seen
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
