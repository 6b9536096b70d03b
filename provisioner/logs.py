"""Process logging for the long-running commands (`consume`, `operator`): one line per event.

Client libraries (kafka-python, redis, urllib3, aiohttp) log their own connection failures, some
with a traceback, while provisioner already reports the same failure in its status and its own
log. Their records are kept at WARNING and above and shortened to one line: a broker that goes
away is an expected event, not a crash, and a library's stack is noise in an operator's log.
"""

from __future__ import annotations

import logging
from typing import Final

LIBRARIES: Final = ("kafka", "redis", "urllib3", "aiohttp", "psycopg", "kopf", "provisioner.stream.librdkafka")
"""Loggers whose chatter stays at WARNING and above."""
_ONE_LINE: Final = frozenset({"kafka", "redis", "urllib3", "aiohttp", "psycopg"})
"""Libraries whose tracebacks are folded into one line (kopf's are kept: they show a handler's bug)."""

_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OneLine(logging.Filter):
    """Folds a library record's exception into its message instead of printing the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.split(".", 1)[0] in _ONE_LINE:
            error = record.exc_info[1]
            if error is not None:
                record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
                record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def configure(level: str) -> None:
    """Logs to stderr at `level`, libraries at WARNING and above, each library record one line."""
    logging.basicConfig(level=level.upper(), format=_FORMAT)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, OneLine) for existing in handler.filters):
            handler.addFilter(OneLine())
