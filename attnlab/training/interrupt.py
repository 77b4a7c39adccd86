"""Ctrl-C during training: finish the current step, save, then stop.

The first SIGINT only sets a flag that the loop checks between steps, so the
checkpoint is written at a step boundary and resumes exactly; a second SIGINT
interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Yield a function that tells whether Ctrl-C was pressed since the block began."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False  # signals reach only the main thread
        return
    pressed = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if pressed.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        pressed.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield pressed.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
