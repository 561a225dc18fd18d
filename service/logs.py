"""Logging of serve and worker processes: one line per record, with the request id of the
HTTP request it belongs to (``-`` outside requests); JSON objects when
``HPS_LOG_FORMAT=json`` (python-json-logger), plain text otherwise."""

from __future__ import annotations

import logging
import sys

from service.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "process", "request_id", "message"]


class RequestIdFilter(logging.Filter):
    """Stamps ``record.request_id`` with the id of the request being served (``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from asgi_correlation_id import correlation_id

        record.request_id = correlation_id.get() or "-"
        return True


def handler(log_format: str) -> logging.Handler:
    """A stderr handler in ``log_format`` (``text`` or ``json``) that stamps request ids."""
    out = logging.StreamHandler(sys.stderr)
    out.addFilter(RequestIdFilter())
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        out.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        out.setFormatter(logging.Formatter(TEXT_FORMAT))
    return out


def configure(settings: Settings | None = None) -> None:
    """Send every logger (uvicorn's included) through one handler on the root logger."""
    settings = settings or Settings()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(settings.log_format))
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


__all__ = ["RequestIdFilter", "configure", "handler"]
