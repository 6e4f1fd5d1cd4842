"""How every service logs: `setup_logging(settings, service)`, once at start.

`LOG_FORMAT=plain` (the default) keeps each service's lines as they always were. `LOG_FORMAT=json`
writes one JSON object per line on stderr, for a log shipper:

    {"ts": "2026-11-22T06:25:22.454Z", "level": "INFO", "service": "stt-worker", "logger": "s2s.worker",
     "message": "stt: job 2be8...: stage ended in 0.671 s", "job_id": "2be8...", "stage": "stt", ...}

with the fields a call passes with `extra=` (job_id, stage, attempt, duration_s, ...), `request_id`
on every line logged while the API serves a request (`request_id`, the context variable the API's
middleware sets), and a traceback as one `exc` string. Every logger goes through the root logger's
one handler: RQ's (`rq.worker`, which then installs no handler of its own) and uvicorn's (the API
passes the configuration this returns to uvicorn as its `log_config`); in JSON, Python's warnings
and uncaught exceptions too, which would otherwise be printed as text.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from .settings import Settings

SERVICES = ("api", "stt-worker", "llm-worker", "tts-worker", "webhook-worker")

#: The id of the API request being served (set by `s2s_api.request_ids`); None outside one.
request_id: ContextVar[str | None] = ContextVar("s2s_request_id", default=None)

#: Each service's plain format, as it was before JSON logs existed (the API's is uvicorn's own).
PLAIN_FORMATS = {
    "stt-worker": "%(asctime)s stt %(levelname)s %(message)s",
    "llm-worker": "%(asctime)s llm %(levelname)s %(message)s",
    "tts-worker": "%(asctime)s tts %(levelname)s %(message)s",
    "webhook-worker": "%(asctime)s %(name)s %(levelname)s %(message)s",
}

#: What every LogRecord has: anything else on a record came with `extra=`.
_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    # uvicorn's copy of its message with terminal colours in it.
    "color_message",
}
_OWN_FIELDS = ("ts", "level", "service", "logger", "message")

#: Loggers that libraries give handlers of their own; here they go to the root's handler instead.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker", "rq.job")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in _OWN_FIELDS and not key.startswith("_"):
                entry[key] = value
        current = request_id.get()
        if current is not None:
            entry.setdefault("request_id", current)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(settings: Settings, service: str) -> dict[str, Any] | None:
    """The `logging.config.dictConfig` configuration of `service`; None for the API's plain
    format, which is uvicorn's own default configuration."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of: {', '.join(SERVICES)}")
    if settings.log_format == "plain" and service == "api":
        return None
    if settings.log_format == "json":
        formatter: dict[str, Any] = {"()": JsonFormatter, "service": service}
    else:
        formatter = {"format": PLAIN_FORMATS[service]}
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"s2s": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "s2s", "stream": "ext://sys.stderr"}
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["stderr"]},
    }
    if settings.log_format == "json":
        config["loggers"] = {name: {"handlers": [], "propagate": True} for name in _LIBRARY_LOGGERS}
    return config


def setup_logging(settings: Settings, service: str) -> dict[str, Any] | None:
    """Configure this process's logging as `service` and return the configuration, which the API
    hands to uvicorn as `log_config` (None: uvicorn's own plain configuration, applied by it)."""
    config = logging_config(settings, service)
    if config is not None:
        logging.config.dictConfig(config)
    if settings.log_format == "json":
        # What Python would print as text of its own: warnings, and tracebacks nothing caught.
        logging.captureWarnings(True)
        sys.excepthook = _uncaught
        threading.excepthook = _uncaught_in_thread
    return config


def _uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("s2s").critical("uncaught %s: %s", kind.__name__, exc, exc_info=(kind, exc, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    exc = args.exc_value
    logging.getLogger("s2s").error(
        "uncaught %s in thread %s: %s",
        args.exc_type.__name__,
        name,
        exc,
        exc_info=(args.exc_type, exc, args.exc_traceback) if exc is not None else None,
    )
