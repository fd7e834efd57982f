"""Applying a document to Consul: all of it or nothing, and never two applies interleaved.

Consul 1.8 has no transaction over intentions, so an apply is:

1. plan (`plan_policy`): read the apply record (deptmesh/policy/applied), then
   the live policy, and compute the changes. A record saying another apply is
   under way (and younger than ABANDONED_AFTER) refuses at once, and so does a
   rate card change that would reprice the current or a past month without
   saying `retroactive = true` (PastRateCardChange, see rate_card_changes.py);
2. take the record (`commit_plan`): write it "applying", with check-and-set
   on the index read in 1. An apply that read the record before another one
   took it fails here, having changed nothing (ConcurrentPolicyApply);
3. confirm that the intentions are still the ones planned on, then write the
   intention changes one by one, remembering how to undo each;
4. one Consul transaction writes every KV document that changes and the
   record "applied", each with check-and-set on the index it was planned on.

When 3 or 4 fails, the intention changes already written are undone and the
record is put back, so the live policy is the one before the apply. Only a
process killed between 2 and 4 leaves a half-written policy (and the record
"applying"): the next apply, once the record is ABANDONED_AFTER old, takes it
over and writes the whole document.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryError
from deptmesh.sidecar.authorization.policy import Intention
from deptmesh.sidecar.policy_document.changes import Change, policy_changes
from deptmesh.sidecar.policy_document.live import (
    APPLIED_KEY,
    KV_SECTIONS,
    LivePolicy,
    read_live_policy,
)
from deptmesh.sidecar.policy_document.rate_card_changes import past_rate_card_changes
from deptmesh.sidecar.policy_document.schema import PolicyDocument

__all__ = [
    "ABANDONED_AFTER",
    "ConcurrentPolicyApply",
    "PastRateCardChange",
    "PolicyApplyError",
    "PolicyPlan",
    "apply_policy",
    "commit_plan",
    "plan_policy",
]

# An apply takes well under a second; one "applying" this long ago was killed.
ABANDONED_AFTER = 120.0

Clock = Callable[[], float]


class PolicyApplyError(RuntimeError):
    """An apply that did not happen; the message says whether anything was left changed."""


class ConcurrentPolicyApply(PolicyApplyError):
    """Another apply ran, or runs, at the same time: this one changed nothing."""


class PastRateCardChange(PolicyApplyError):
    """The document reprices a month already begun without `retroactive = true`: nothing
    was changed. `reasons` says which cards."""

    def __init__(self, reasons: list[str], current_month: str) -> None:
        self.reasons = tuple(reasons)
        year, month = map(int, current_month.split("-"))
        following = f"{year + month // 12}-{month % 12 + 1:02d}"
        super().__init__(
            f"rate_cards: {'; '.join(reasons)}: nothing was changed. A change takes effect"
            f' from the month it names: give it effective_month = "{following}" (or later),'
            " or mark the card `retroactive = true` to reprice the months it covers"
        )


@dataclass(frozen=True)
class PolicyPlan:
    document: PolicyDocument
    live: LivePolicy
    changes: tuple[Change, ...]


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def plan_policy(
    registry: ConsulRegistry, document: PolicyDocument, *, clock: Clock = time.time
) -> PolicyPlan:
    """What applying `document` would change; RegistryError when Consul cannot be read."""
    live = read_live_policy(registry)
    record = live.applied
    if record.state == "applying" and clock() - record.at < ABANDONED_AFTER:
        raise ConcurrentPolicyApply(
            f"another policy apply (serial {record.serial}) has been under way since"
            f" {_time(record.at)}: nothing was changed; try again when it is done"
        )
    current_month = datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m")
    reasons = past_rate_card_changes(live.document.rate_cards, document.rate_cards, current_month)
    if reasons:
        raise PastRateCardChange(reasons, current_month)
    return PolicyPlan(document, live, policy_changes(live.document, document))


def apply_policy(
    registry: ConsulRegistry, document: PolicyDocument, *, clock: Clock = time.time
) -> tuple[Change, ...]:
    """Makes `document` the policy in force (see the module's docstring); the changes made.

    Raises ConcurrentPolicyApply when another apply interfered (nothing was
    changed), PolicyApplyError when Consul failed part way (what was written is
    undone), RegistryError when Consul could not be read or refused the token.
    """
    return commit_plan(registry, plan_policy(registry, document, clock=clock), clock=clock)


def commit_plan(
    registry: ConsulRegistry, plan: PolicyPlan, *, clock: Clock = time.time
) -> tuple[Change, ...]:
    """Applies a plan, if nothing moved since it was made; see apply_policy."""
    if not plan.changes:
        return ()
    record = plan.live.applied
    serial = record.serial + 1
    taking = _record(serial, "applying", clock(), plan.document)
    if not registry.kv_put_if(APPLIED_KEY, taking, record.modify_index):
        raise ConcurrentPolicyApply(
            f"another policy apply changed {APPLIED_KEY} since this one read it:"
            " nothing was changed; check again and apply what is then to change"
        )
    taken_index, text = registry.kv_entry(APPLIED_KEY)
    if text != taking:
        raise ConcurrentPolicyApply(
            f"another policy apply took {APPLIED_KEY} over: nothing was changed by this one"
        )
    undo = _Undo(registry)
    try:
        _, entries = registry.intentions(0, 0)
        now = {(e["SourceName"], e["DestinationName"]): e["Action"] for e in entries}
        planned = {(i.source, i.destination): i.action for i in plan.live.document.intentions}
        if now != planned:
            raise ConcurrentPolicyApply(
                "the intentions changed since they were read: nothing was changed;"
                " check again and apply what is then to change"
            )
        _write_intentions(registry, plan, undo)
        sections = {change.section for change in plan.changes}
        writes: dict[str, tuple[int, str | None]] = {
            key: (plan.live.kv_indexes[key], render(plan.document))
            for section, (key, render) in KV_SECTIONS.items()
            if section in sections
        }
        writes[APPLIED_KEY] = (taken_index, _record(serial, "applied", clock(), plan.document))
        if not registry.kv_write_all(writes):
            raise ConcurrentPolicyApply(
                "a policy document changed in Consul while this apply ran: nothing was"
                " changed; check again and apply what is then to change"
            )
    except (PolicyApplyError, RegistryError) as error:
        left = undo.run()
        if not _release(registry, taken_index, record.text):
            left.append(f"{APPLIED_KEY} still says applying")
        if not left:
            if isinstance(error, PolicyApplyError):
                raise
            raise PolicyApplyError(f"{error}: nothing was changed") from error
        raise PolicyApplyError(
            f"{error}; the apply was undone but for: {'; '.join(left)}"
        ) from error
    return plan.changes


def _record(serial: int, state: str, at: float, document: PolicyDocument) -> str:
    digest = hashlib.sha256(json.dumps(document.to_data(), sort_keys=True).encode()).hexdigest()
    return json.dumps(
        {"serial": serial, "state": state, "at": at, "sha256": digest}, sort_keys=True
    )


def _release(registry: ConsulRegistry, taken_index: int, previous: str | None) -> bool:
    """Puts the record back as it was before this apply took it."""
    try:
        return registry.kv_write_all({APPLIED_KEY: (taken_index, previous)})
    except RegistryError:
        return False


def _write_intentions(registry: ConsulRegistry, plan: PolicyPlan, undo: _Undo) -> None:
    before = {(i.source, i.destination): i for i in plan.live.document.intentions}
    after = {(i.source, i.destination): i for i in plan.document.intentions}
    # Additions and changes first, removals last: a deny never lapses before its
    # replacement is in force.
    for pair, wanted in after.items():
        old = before.get(pair)
        if old is None or old.action != wanted.action:
            registry.set_intention(wanted.source, wanted.destination, wanted.action)
            undo.add(pair, old)
    for pair, old in before.items():
        if pair not in after:
            registry.delete_intention(plan.live.intention_ids[pair])
            undo.add(pair, old)


class _Undo:
    """The intentions as they were before this apply wrote them, to put back on failure."""

    def __init__(self, registry: ConsulRegistry) -> None:
        self._registry = registry
        self._previous: list[tuple[tuple[str, str], Intention | None]] = []

    def add(self, pair: tuple[str, str], previous: Intention | None) -> None:
        self._previous.append((pair, previous))

    def run(self) -> list[str]:
        """Puts every written intention back; what could not be, in words."""
        left: list[str] = []
        for (source, destination), previous in reversed(self._previous):
            try:
                if previous is not None:
                    self._registry.set_intention(source, destination, previous.action)
                    continue
                _, entries = self._registry.intentions(0, 0)
                for entry in entries:
                    if (entry["SourceName"], entry["DestinationName"]) == (source, destination):
                        self._registry.delete_intention(entry["ID"])
            except RegistryError as error:
                left.append(f"{source} -> {destination}: {error}")
        return left
