"""What every service process does at start: configure logging, and turn SIGTERM and Ctrl-C
into one event the composition root waits on."""

from __future__ import annotations

import logging
import signal
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


def shutdown_event() -> threading.Event:
    """An event set by the first SIGTERM or SIGINT; call it from the main thread."""
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stopping
