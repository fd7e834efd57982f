"""structlog set up once per process: JSON in production, readable console for people."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog
from opentelemetry import trace

__all__ = ["add_trace_context", "configure_logging", "escape_control_characters", "printable"]

LogFormat = Literal["json", "console"]


def _escape(character: str) -> str:
    if character.isprintable():
        return character
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every character that is not printable written as a visible escape."""
    return text if text.isprintable() else "".join(map(_escape, text))


def escape_control_characters(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A structlog processor: every character of a string value that is not printable
    (CR, LF, ESC, C1 controls such as U+009B, line and paragraph separators, ...) is
    written as a visible escape, so a logged value can neither forge a log line nor
    drive a terminal."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = printable(value)
    return event_dict


def add_trace_context(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A structlog processor: a line written while a span is current carries its ids.

    Inside a call that is the call's server span, so every line a handler or the
    sidecar writes can be found from the trace, and the other way round.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def configure_logging(
    log_format: LogFormat = "json", level: int = logging.INFO, *, file: TextIO | None = None
) -> None:
    """Configures structlog for the process: to `file`, standard error by default."""
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
            add_trace_context,
            structlog.processors.format_exc_info,
            escape_control_characters,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file or sys.stderr),
        cache_logger_on_first_use=True,
    )
