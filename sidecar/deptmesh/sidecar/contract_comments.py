"""The comments of a contract, read from its .proto source.

The generated modules carry no comments: protoc's Python generator drops a
file's source info. The .proto sources are installed beside the generated
modules (`deptmesh/hr/v1/hr.proto` next to `hr_pb2.py`, in the repository and
in the wheel), so the comments are read from there. `buf format` keeps the
sources in one layout, which is all this reader relies on: one declaration per
line, its comment on the `//` lines right above it (or after it on the same line).

Comments are keyed by the full name of what they describe, as the descriptors
name it: `deptmesh.hr.v1.EmployeeService`, `deptmesh.hr.v1.EmployeeService.GetEmployee`,
`deptmesh.hr.v1.Employee.employee_id`; an enum value by its enum's full name and
its own (`deptmesh.reimbursement.v1.ClaimState.CLAIM_STATE_PAID`).
"""

from __future__ import annotations

import importlib.resources
import re

from google.protobuf.descriptor import FileDescriptor

__all__ = ["comments_of", "parse_comments"]

_DECLARATION = re.compile(r"(?P<kind>message|enum|service|oneof|rpc)\s+(?P<name>\w+)")
_FIELD = re.compile(
    r"(?:(?:repeated|optional|required)\s+)?(?:map\s*<[^>]*>|[\w.]+)\s+(?P<name>\w+)\s*=\s*\d+"
)
_ENUM_VALUE = re.compile(r"(?P<name>\w+)\s*=\s*-?\d+")
_PACKAGE = re.compile(r"package\s+(?P<name>[\w.]+)\s*;")
# Kinds whose name is part of the full name of what they hold.
_SCOPES = frozenset({"message", "enum", "service"})


def _split_comment(line: str) -> tuple[str, str | None]:
    """The code of a line and its `//` comment (None without one); `//` inside a string
    is not a comment."""
    quote = ""
    for index, character in enumerate(line):
        if quote:
            if character == quote:
                quote = ""
        elif character in "\"'":
            quote = character
        elif line.startswith("//", index):
            text = line[index + 2 :]
            return line[:index].strip(), text[1:] if text.startswith(" ") else text
    return line.strip(), None


def parse_comments(source: str) -> dict[str, str]:
    """Full name -> comment, for every commented declaration of a .proto source."""
    package = ""
    scopes: list[str | None] = []  # one per open brace: a name, or None (oneof, options)
    pending: list[str] = []
    comments: dict[str, str] = {}
    for raw in source.splitlines():
        code, comment = _split_comment(raw)
        if not code:
            if comment is None:
                pending = []  # a blank line detaches the comment above it
            else:
                pending.append(comment)
            continue
        leading, pending = pending, []
        prefix = ".".join(filter(None, [package, *scopes]))
        name, opens = _declared(code)
        if (found := _PACKAGE.match(code)) is not None:
            package = found["name"]
        elif name is not None:
            text = "\n".join(leading).rstrip() or (comment or "").strip()
            if text:
                comments[f"{prefix}.{name}"] = text
        for brace in re.findall(r"[{}]", code):
            if brace == "{":
                scopes.append(opens)
                opens = None  # only the declaration's own brace names a scope
            elif scopes:
                scopes.pop()
    return comments


def _declared(code: str) -> tuple[str | None, str | None]:
    """What a line declares (its name, or None) and the scope its brace opens, if named."""
    found = _DECLARATION.match(code)
    if found is not None:
        return found["name"], found["name"] if found["kind"] in _SCOPES else None
    if code.startswith(("option ", "reserved ", "import ", "syntax ", "extend ", "edition ")):
        return None, None
    found = _FIELD.match(code) or _ENUM_VALUE.match(code)
    return (None if found is None else found["name"]), None


def comments_of(file: FileDescriptor) -> dict[str, str]:
    """The comments of a contract file, from the .proto installed beside its module;
    empty when the source is not installed."""
    folder, _, filename = file.name.rpartition("/")
    try:
        source = importlib.resources.files(folder.replace("/", ".")).joinpath(filename).read_text()
    except (ModuleNotFoundError, OSError, ValueError):
        return {}
    return parse_comments(source)
