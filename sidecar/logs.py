"""structlog set up once per process: JSON in production, readable console for people."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

__all__ = ["configure_logging", "escape_control_characters"]

LogFormat = Literal["json", "console"]

# Control characters (CR, LF, ESC, ...) in a logged value could forge log lines
# or drive a terminal; they are written as visible escapes instead.
_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


def escape_control_characters(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A structlog processor: every string value with control characters is escaped."""
    for key, value in event_dict.items():
        if isinstance(value, str) and not value.isprintable():
            event_dict[key] = value.translate(_ESCAPES)
    return event_dict


def configure_logging(log_format: LogFormat = "json", level: int = logging.INFO) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            escape_control_characters,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
