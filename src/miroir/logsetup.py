"""Logging: structlog to stderr, JSON lines (default) or a console format for humans.

Libraries that log through the standard `logging` module (hypercorn, httpx) are routed
through the same renderer, so an operator sees one format on stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import msgspec
import structlog

LogFormat = Literal["json", "console"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _stdlib_logger_name(logger: object, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record = event_dict.get("_record")
    if record is not None:
        event_dict["logger_name"] = record.name
    return event_dict


# msgspec writes a log line's JSON in a third of json.dumps's time (one line per request,
# issue 8). Values it cannot encode are written as their repr, as structlog's default does.
_line_encoder = msgspec.json.Encoder(enc_hook=repr)


def _json_line(event_dict: dict, **_: object) -> str:
    return _line_encoder.encode(event_dict).decode()


def setup_logging(format: LogFormat = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog and stdlib logging. Safe to call more than once (last call wins)."""
    stream = stream if stream is not None else sys.stderr
    lvl = _LEVELS.get(level, logging.INFO)
    shared: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if format == "console":
        renderer: structlog.typing.Processor = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        exc: list = []  # the console renderer prints tracebacks itself
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
        exc = [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *exc, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, _stdlib_logger_name, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exc, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    # httpx logs every request at INFO: far too chatty for a scatter-gather proxy.
    logging.getLogger("httpx").setLevel(max(lvl, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(lvl, logging.WARNING))


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    # Lazy: the proxy picks up the configuration at first use, so module-level loggers
    # created before setup_logging() still obey it.
    # (`logger` is a reserved keyword of get_logger, hence the dict.)
    return structlog.get_logger(**{"logger_name": name})
