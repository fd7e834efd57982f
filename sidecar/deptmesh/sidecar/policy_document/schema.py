"""The policy document's schema: what each section may hold, checked with a path per problem.

A document is the mesh's whole policy, written by the platform team and
reviewed like code (deptmesh.services ships the company's). Schema 1:

    schema_version = 1                  # required; the schema the document is written to

    [departments.hr]                    # every identity the policy names
    description = "employees, managers, cost centres"   # optional

    [[intentions]]                      # who may call whom; everything else is denied
    source = "reimbursement"            # a department, or "*" for every caller
    destination = "hr"                  # a department
    action = "allow"                    # "allow" or "deny"

    [method_rules]                      # who may call a method, within the intentions
    "/deptmesh.finance.v1.PaymentService/Payout" = ["reimbursement"]

    [quotas]                            # the quota policy of deptmesh.sidecar.quotas.policy
    default_tier = "standard"
    [quotas.tiers.standard]
    rate = 50
    burst = 100
    max_in_flight = 16
    [quotas.services.finance.callers]
    reimbursement = "standard"

Schema 2 adds the rate cards (deptmesh.sidecar.metering.rate_card: prices
as decimal strings, exact to the nano; a change takes effect from its month):

    [[rate_cards]]                      # one card per effective month
    effective_month = "2026-11"         # the first month it prices
    currency = "EUR"                    # ISO 4217
    free_units = 1000                   # optional: per paying department and month
    retroactive = false                 # optional: see apply.py, "past months"
    [rate_cards.services.hr]            # a callee: a declared department
    unit_price = "0.0010"               # per cost unit; or volume tiers:
    # tiers = [{ name = "first 10k", up_to_units = 10000, unit_price = "0.0010" },
    #          { name = "beyond", unit_price = "0.0005" }]
    subscription = "25.00"              # optional: monthly, per department using it
    [rate_cards.methods."/deptmesh.finance.v1.PaymentService/Payout"]
    unit_price = "0.0500"               # a method's own price, over its callee's

A section left out means none of it: no method rules, no quotas (nobody is
limited). A top-level key the schema does not know is an error, so a typo
never silently drops a section; later schemas add sections (a rate card, SLOs,
traffic thresholds) as new entries of SECTIONS, which documents written to an
older schema never hold. A document written to a newer schema than this code
knows is refused with a message saying so.

Every problem names its key path (`intentions[4].destination`), which the
file loader turns into a line number. Validation reports every problem it
finds, not only the first.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deptmesh.sidecar.authorization.policy import Intention
from deptmesh.sidecar.metering.rate_card import RateCards, RateCardsInvalid, parse_rate_cards
from deptmesh.sidecar.policy_document.monitoring import MonitoringPolicy, parse_monitoring
from deptmesh.sidecar.quotas.policy import parse_quota_policy

__all__ = [
    "SCHEMA_VERSION",
    "SECTIONS",
    "SECTION_SINCE",
    "Department",
    "KeyPath",
    "KnownMethod",
    "PolicyDocument",
    "PolicyDocumentInvalid",
    "Problem",
    "format_key_path",
    "validate_policy",
]

SCHEMA_VERSION = 2
# Top-level keys, in the order a rendered document holds them.
SECTIONS = (
    *("schema_version", "departments", "intentions", "method_rules", "quotas"),
    *("rate_cards", "monitoring"),
)
# The sections a later schema added: a document written to an older one never holds them.
SECTION_SINCE = {"rate_cards": 2, "monitoring": 2}

KeyPath = tuple[str | int, ...]
# Whether a method path (`/package.Service/Method`) names a method of a known contract.
KnownMethod = Callable[[str], bool]

ANY_CALLER = "*"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_METHOD_PATH = re.compile(
    r"/[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*/[A-Za-z_][A-Za-z0-9_]*"
)
_TIER_FIELDS = ("rate", "burst", "max_in_flight", "shadow")


def format_key_path(path: KeyPath) -> str:
    """`intentions[4].destination`, `method_rules."/pkg.S/M"`: a path as TOML spells keys."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
            text += f".{key}" if text else key
    return text or "the document"


@dataclass(frozen=True, slots=True)
class Problem:
    path: KeyPath
    message: str

    def __str__(self) -> str:
        return f"{format_key_path(self.path)}: {self.message}"


class PolicyDocumentInvalid(ValueError):
    """A document that does not validate; `problems` says every way in which."""

    def __init__(self, problems: Iterable[Problem], *, lines: Iterable[str] | None = None) -> None:
        self.problems = tuple(problems)
        # The loader replaces the bare paths with `file:line: path: message` lines.
        self.lines = tuple(lines) if lines is not None else tuple(map(str, self.problems))
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True, slots=True)
class Department:
    description: str = ""


@dataclass(frozen=True)
class PolicyDocument:
    """A valid policy, in canonical order (so two documents stating the same policy are
    equal): departments by name, intentions by destination then source, callers sorted.

    `quotas` is the quota policy document (deptmesh.sidecar.quotas.policy's JSON
    schema) with defaults left out, None for no quotas.
    """

    departments: Mapping[str, Department]
    intentions: tuple[Intention, ...]
    method_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    quotas: Mapping[str, Any] | None = None
    rate_cards: RateCards = field(default_factory=RateCards)
    schema_version: int = SCHEMA_VERSION
    # SLOs and traffic thresholds (policy_document.monitoring); None: no [monitoring].
    monitoring: MonitoringPolicy | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "departments", dict(sorted(self.departments.items())))
        object.__setattr__(self, "intentions", tuple(sorted(self.intentions, key=_intention_order)))
        object.__setattr__(
            self,
            "method_rules",
            {path: tuple(sorted(set(c))) for path, c in sorted(self.method_rules.items())},
        )

    def to_data(self) -> dict[str, Any]:
        """The document as plain data (what TOML or JSON would hold), sections in order."""
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "departments": {
                name: ({"description": d.description} if d.description else {})
                for name, d in self.departments.items()
            },
            "intentions": [
                {"source": i.source, "destination": i.destination, "action": i.action}
                for i in self.intentions
            ],
            "method_rules": {path: list(c) for path, c in self.method_rules.items()},
        }
        if self.quotas is not None:
            data["quotas"] = self.quotas
        if self.rate_cards.cards:
            data["rate_cards"] = [card.policy_data() for card in self.rate_cards.cards]
        if self.monitoring is not None:
            data["monitoring"] = self.monitoring.to_data()
        return data


def _intention_order(intention: Intention) -> tuple[str, str]:
    return (intention.destination, intention.source)


class _Checker:
    """Collects problems while a document is read, so that all are reported at once."""

    def __init__(self, known_method: KnownMethod) -> None:
        self.problems: list[Problem] = []
        self.known_method = known_method
        self.departments: set[str] = set()

    def fail(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(path, message))

    def table(self, value: object, path: KeyPath) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.fail(path, f"must be a table, not {_kind(value)}")
        return None

    def only_keys(
        self, table: Mapping[str, Any], allowed: Iterable[str], path: KeyPath, what: str
    ) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                self.fail((*path, key), f"unknown field of {what} (known: {', '.join(allowed)})")

    def department(self, name: object, path: KeyPath, *, wildcard: bool = False) -> bool:
        if wildcard and name == ANY_CALLER:
            return True
        if not isinstance(name, str):
            self.fail(path, f"must be a department name, not {_kind(name)}")
            return False
        if name not in self.departments:
            self.fail(path, f"unknown department {name!r} (declare it under [departments])")
            return False
        return True

    def method(self, method: str, path: KeyPath) -> bool:
        if not _METHOD_PATH.fullmatch(method):
            self.fail(path, f"{method!r} is not a method path like /package.Service/Method")
            return False
        if not self.known_method(method):
            self.fail(path, f"unknown method {method!r}: no contract declares it")
            return False
        return True


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


def validate_policy(data: Mapping[str, Any], *, known_method: KnownMethod) -> PolicyDocument:
    """The policy `data` (a parsed TOML document) states, or PolicyDocumentInvalid."""
    check = _Checker(known_method)
    _schema_version(check, data)
    for key in data:
        if key not in SECTIONS:
            check.fail(
                (key,), f"unknown section (schema {SCHEMA_VERSION} has {', '.join(SECTIONS)})"
            )
    departments = _departments(check, data.get("departments"))
    intentions = _intentions(check, data.get("intentions", []))
    method_rules = _method_rules(check, data.get("method_rules", {}))
    quotas = None if "quotas" not in data else _quotas(check, data["quotas"])
    rate_cards = _rate_cards(check, data.get("rate_cards", []))
    if not check.problems and quotas is not None:
        try:  # what the services will parse: never publish what they would reject
            parse_quota_policy(json.dumps(quotas))
        except ValueError as error:
            check.fail(("quotas",), str(error))
    monitoring = None
    if "monitoring" in data:
        monitoring = parse_monitoring(
            data["monitoring"],
            fail=check.fail,
            department=check.department,
            tiers=set((quotas or {}).get("tiers", {})),
        )
    if check.problems:
        raise PolicyDocumentInvalid(check.problems)
    return PolicyDocument(
        departments, tuple(intentions), method_rules, quotas, rate_cards, monitoring=monitoring
    )


def _schema_version(check: _Checker, data: Mapping[str, Any]) -> None:
    version = data.get("schema_version")
    if version is None:
        check.fail(("schema_version",), f"missing: say `schema_version = {SCHEMA_VERSION}`")
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        check.fail(("schema_version",), "must be a whole number >= 1")
    elif version > SCHEMA_VERSION:
        check.fail(
            ("schema_version",),
            f"{version} is newer than this deptmesh knows ({SCHEMA_VERSION}): upgrade deptmesh",
        )
    elif isinstance(version, int):
        for section, since in SECTION_SINCE.items():
            if section in data and version < since:
                check.fail(
                    (section,),
                    f"a section of schema {since}: say `schema_version = {since}` (or newer)",
                )


def _departments(check: _Checker, value: object) -> dict[str, Department]:
    path: KeyPath = ("departments",)
    if value is None:
        check.fail(path, "missing: declare every department the policy names")
        return {}
    table = check.table(value, path)
    departments: dict[str, Department] = {}
    for name, fields in (table or {}).items():
        where = (*path, name)
        if not _NAME.fullmatch(name):
            check.fail(where, "a department name is 1 to 63 lower-case letters, digits or '-'")
            continue
        check.departments.add(name)  # declared, even if its fields are wrong
        described = check.table(fields, where)
        if described is None:
            continue
        check.only_keys(described, ("description",), where, "a department")
        description = described.get("description", "")
        if not isinstance(description, str):
            check.fail((*where, "description"), f"must be a string, not {_kind(description)}")
            description = ""
        departments[name] = Department(description)
    return departments


def _intentions(check: _Checker, value: object) -> list[Intention]:
    path: KeyPath = ("intentions",)
    if not isinstance(value, list):
        check.fail(path, f"must be an array of tables ([[intentions]]), not {_kind(value)}")
        return []
    intentions: list[Intention] = []
    seen: dict[tuple[str, str], int] = {}
    for number, entry in enumerate(value):
        where = (*path, number)
        fields = check.table(entry, where)
        if fields is None:
            continue
        check.only_keys(fields, ("source", "destination", "action"), where, "an intention")
        missing = [key for key in ("source", "destination", "action") if key not in fields]
        if missing:
            check.fail(where, f"missing {', '.join(missing)}")
            continue
        source, destination, action = fields["source"], fields["destination"], fields["action"]
        good = check.department(source, (*where, "source"), wildcard=True)
        good = check.department(destination, (*where, "destination")) and good
        if action not in ("allow", "deny"):
            check.fail((*where, "action"), f'{action!r} is not "allow" or "deny"')
            good = False
        if not good:
            continue
        pair = (source, destination)
        if pair in seen:
            check.fail(where, f"{source} -> {destination} is already intentions[{seen[pair]}]")
            continue
        seen[pair] = number
        intentions.append(Intention(source, destination, action))
    return intentions


def _method_rules(check: _Checker, value: object) -> dict[str, tuple[str, ...]]:
    path: KeyPath = ("method_rules",)
    table = check.table(value, path)
    rules: dict[str, tuple[str, ...]] = {}
    for method, callers in (table or {}).items():
        where = (*path, method)
        known = check.method(method, where)
        if not isinstance(callers, list) or not callers:
            check.fail(where, "must be a non-empty array of the departments that may call it")
            continue
        named = [check.department(c, (*where, i), wildcard=True) for i, c in enumerate(callers)]
        if known and all(named):
            rules[method] = tuple(callers)
    return rules


def _quotas(check: _Checker, value: object) -> dict[str, Any] | None:
    path: KeyPath = ("quotas",)
    table = check.table(value, path)
    if table is None:
        return None
    check.only_keys(table, ("tiers", "default_tier", "services"), path, "quotas")
    tiers = _tiers(check, table.get("tiers"))
    default = table.get("default_tier")
    if default is None:
        check.fail(path, "missing default_tier: the tier of every caller not assigned one")
    elif default not in tiers:
        check.fail((*path, "default_tier"), f"{default!r} is not one of the tiers {sorted(tiers)}")
    services: dict[str, Any] = {}
    for destination, rules in (
        check.table(table.get("services", {}), (*path, "services")) or {}
    ).items():
        where: KeyPath = (*path, "services", destination)
        if check.department(destination, where):
            services[destination] = _destination(check, rules, set(tiers), where)
    data: dict[str, Any] = {"tiers": tiers, "default_tier": default}
    if services:
        data["services"] = services
    return data


def _tiers(check: _Checker, value: object) -> dict[str, dict[str, Any]]:
    path: KeyPath = ("quotas", "tiers")
    if value is None:
        check.fail(("quotas",), "missing tiers: at least one [quotas.tiers.NAME]")
        return {}
    table = check.table(value, path)
    if table is not None and not table:
        check.fail(path, "must name at least one tier")
    tiers: dict[str, dict[str, Any]] = {}
    for name, fields in (table or {}).items():
        where = (*path, name)
        tier = check.table(fields, where)
        if tier is None:
            continue
        check.only_keys(tier, _TIER_FIELDS, where, "a tier")
        missing = [key for key in _TIER_FIELDS[:3] if key not in tier]
        if missing:
            check.fail(where, f"missing {', '.join(missing)}")
        for key in ("rate", "burst"):
            amount = tier.get(key, 1)
            if (
                isinstance(amount, bool)
                or not isinstance(amount, int | float)
                or not (0 < amount < math.inf)
            ):
                check.fail((*where, key), f"must be a positive number, not {amount!r}")
        in_flight = tier.get("max_in_flight", 1)
        if isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 1:
            check.fail((*where, "max_in_flight"), f"must be a whole number >= 1, not {in_flight!r}")
        if not isinstance(tier.get("shadow", False), bool):
            check.fail((*where, "shadow"), "must be true or false")
        tiers[name] = {key: tier[key] for key in _TIER_FIELDS if key in tier}
        if tiers[name].get("shadow") is False:
            del tiers[name]["shadow"]  # the default, left out so equal policies compare equal
    return tiers


def _destination(check: _Checker, value: object, tiers: set[str], path: KeyPath) -> dict[str, Any]:
    rules = check.table(value, path) or {}
    check.only_keys(rules, ("callers", "methods"), path, "a destination's quotas")
    data: dict[str, Any] = {}
    callers = _assignments(check, rules.get("callers", {}), tiers, (*path, "callers"))
    if callers:
        data["callers"] = callers
    methods: dict[str, Any] = {}
    for method, assigned in (
        check.table(rules.get("methods", {}), (*path, "methods")) or {}
    ).items():
        where = (*path, "methods", method)
        if check.method(method, where):
            methods[method] = _assignments(check, assigned, tiers, where)
    if methods:
        data["methods"] = methods
    return data


def _assignments(check: _Checker, value: object, tiers: set[str], path: KeyPath) -> dict[str, str]:
    assigned: dict[str, str] = {}
    for caller, tier in (check.table(value, path) or {}).items():
        where = (*path, caller)
        if not check.department(caller, where, wildcard=True):
            continue
        if tier not in tiers:
            check.fail(where, f"unknown tier {tier!r} (tiers: {', '.join(sorted(tiers))})")
            continue
        assigned[caller] = tier
    return assigned


def _rate_cards(check: _Checker, value: object) -> RateCards:
    """The cards (deptmesh.sidecar.metering.rate_card), their problems under rate_cards."""
    try:
        return parse_rate_cards(value, callees=check.departments, known_method=check.known_method)
    except RateCardsInvalid as invalid:
        for path, message in invalid.problems:
            check.fail(("rate_cards", *path), message)
        return RateCards()
