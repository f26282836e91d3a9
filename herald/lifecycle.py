"""What every service process does at start: configure logging, and turn SIGTERM and Ctrl-C
into one event the composition root waits on."""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import threading
from types import FrameType

logger = logging.getLogger(__name__)


def begin(log_level: str) -> threading.Event:
    """What a service's main does first: logging set up, and the event a signal will set."""
    configure_logging(log_level)
    return shutdown_event()


def configure_logging(level: str) -> None:
    """One line per record, with time, level and logger: greppable, and enough to follow a call."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def name_os_thread() -> None:
    """Give the calling thread's OS thread its Python name (its first 15 bytes).

    Python leaves every thread named after the process, so `top -H`, py-spy and
    /proc/<pid>/task/*/comm could not tell the relay from the gRPC loop; `make bench` splits a
    service's CPU by these names. Linux only; elsewhere nothing happens.
    """
    if not sys.platform.startswith("linux"):
        return
    name = threading.current_thread().name.encode()[:15]
    pr_set_name = 15
    ctypes.CDLL(None).prctl(pr_set_name, ctypes.c_char_p(name), 0, 0, 0)


def shutdown_event() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT; call it from the main thread."""
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stopping
