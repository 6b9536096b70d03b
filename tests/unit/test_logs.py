"""A library's failure is one log line; provisioner's own tracebacks stay whole."""

from __future__ import annotations

import io
import logging

from provisioner.logs import OneLine


def _render(name: str) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(OneLine())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ConnectionResetError("peer closed")
        except ConnectionResetError:
            logger.error("error receiving from %s", "broker-1", exc_info=True)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_a_library_traceback_folds_into_one_line() -> None:
    text = _render("kafka.net.transport")
    assert text == "error receiving from broker-1: ConnectionResetError: peer closed\n"


def test_provisioners_own_traceback_is_kept() -> None:
    text = _render("provisioner.operator")
    assert "Traceback (most recent call last)" in text
    assert "ConnectionResetError: peer closed" in text
