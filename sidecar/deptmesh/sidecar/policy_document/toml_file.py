"""A policy document as a TOML file: read with line-numbered errors, and written back.

`parse_policy_text` turns every problem into one line a reviewer can act on,

    company_policy.toml:23: intentions[4].destination: unknown department 'hrr' (...)

sorted by line: TOML syntax errors at tomllib's line, schema problems at the
line of the key they are about (toml_lines.py). `render_policy` writes a
document in the same format, in canonical order (what `deptmesh policy show`
prints); reading it back gives an equal document.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deptmesh.sidecar.documents import MAX_DOCUMENT_BYTES
from deptmesh.sidecar.policy_document.contracts import contract_declares
from deptmesh.sidecar.policy_document.schema import (
    KnownMethod,
    PolicyDocument,
    PolicyDocumentInvalid,
    Problem,
    format_key_path,
    validate_policy,
)
from deptmesh.sidecar.policy_document.toml_lines import key_lines, line_of

__all__ = ["load_policy_file", "parse_policy_text", "render_policy", "toml_key", "toml_value"]

_SYNTAX_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def load_policy_file(
    path: Path, *, known_method: KnownMethod = contract_declares
) -> PolicyDocument:
    """The document in `path`, or PolicyDocumentInvalid (a file that cannot be read too)."""
    try:
        with path.open("rb") as file:
            content = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as error:
        raise PolicyDocumentInvalid(
            [], lines=[f"{path}: cannot be read: {error.strerror or error}"]
        ) from None
    if len(content) > MAX_DOCUMENT_BYTES:
        raise PolicyDocumentInvalid(
            [], lines=[f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes: not a policy document"]
        )
    try:
        text = content.decode()
    except UnicodeDecodeError as error:
        raise PolicyDocumentInvalid([], lines=[f"{path}: not UTF-8 text: {error}"]) from None
    return parse_policy_text(text, name=str(path), known_method=known_method)


def parse_policy_text(
    text: str, *, name: str = "<policy>", known_method: KnownMethod = contract_declares
) -> PolicyDocument:
    """The document `text` states, or PolicyDocumentInvalid with `name:line: ...` lines."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _SYNTAX_POSITION.search(message)
        where = f"{name}:{found.group(1)}" if found else name
        reason = message[: found.start()] if found else message
        column = f" (column {found.group(2)})" if found else ""
        raise PolicyDocumentInvalid(
            [Problem((), reason)], lines=[f"{where}: TOML syntax: {reason}{column}"]
        ) from None
    try:
        return validate_policy(data, known_method=known_method)
    except PolicyDocumentInvalid as invalid:
        lines = key_lines(text)
        located = sorted(
            ((line_of(lines, problem.path) or 1, index), problem)
            for index, problem in enumerate(invalid.problems)
        )
        raise PolicyDocumentInvalid(
            invalid.problems,
            lines=[f"{name}:{line}: {problem}" for (line, _), problem in located],
        ) from None


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """A value as TOML writes it inline (JSON's string escapes are TOML's too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        inner = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def render_policy(document: PolicyDocument, *, header: str = "") -> str:
    """The document as TOML in canonical order; `header` lines become comments on top."""
    data = document.to_data()
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    out += [f"schema_version = {data['schema_version']}", "", "[departments]"]
    out += [f"{toml_key(n)} = {toml_value(d)}" for n, d in data["departments"].items()]
    for intention in data["intentions"]:
        out += ["", "[[intentions]]"]
        out += [f"{key} = {toml_value(value)}" for key, value in intention.items()]
    out += ["", "[method_rules]"]
    out += [f"{toml_key(p)} = {toml_value(c)}" for p, c in data["method_rules"].items()]
    quotas = data.get("quotas")
    if quotas is not None:
        out += ["", "[quotas]", f"default_tier = {toml_value(quotas['default_tier'])}"]
        for tier, fields in quotas["tiers"].items():
            out += ["", f"[quotas.tiers.{toml_key(tier)}]"]
            out += [f"{key} = {toml_value(value)}" for key, value in fields.items()]
        for destination, rules in quotas.get("services", {}).items():
            for part in ("callers", "methods"):
                if rules.get(part):
                    out += ["", f"[{format_key_path(('quotas', 'services', destination, part))}]"]
                    out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in rules[part].items()]
    for card in data.get("rate_cards", []):
        out += _rate_card_lines(card)
    monitoring = data.get("monitoring")
    if monitoring is not None:
        out += ["", "[monitoring]"]
        out += [f"{k} = {toml_value(v)}" for k, v in monitoring.items() if not isinstance(v, dict)]
        if monitoring.get("traffic_thresholds"):
            out += ["", "[monitoring.traffic_thresholds]"]
            out += [
                f"{toml_key(k)} = {toml_value(v)}"
                for k, v in monitoring["traffic_thresholds"].items()
            ]
        for service, fields in monitoring.get("slos", {}).items():
            out += ["", f"[monitoring.slos.{toml_key(service)}]"]
            out += [f"{key} = {toml_value(value)}" for key, value in fields.items()]
    return "\n".join(out) + "\n"


def _rate_card_lines(card: Mapping[str, Any]) -> list[str]:
    """One `[[rate_cards]]` entry: its fields, then a table per callee and per method."""
    out = ["", "[[rate_cards]]"]
    out += [f"{k} = {toml_value(v)}" for k, v in card.items() if k not in ("services", "methods")]
    for part in ("services", "methods"):
        for name, price in card.get(part, {}).items():
            out += ["", f"[{format_key_path(('rate_cards', part, name))}]"]
            for key, value in price.items():
                if key == "tiers":  # one tier a line, as a reviewer reads them
                    out += ["tiers = [", *(f"  {toml_value(t)}," for t in value), "]"]
                else:
                    out.append(f"{key} = {toml_value(value)}")
    return out
