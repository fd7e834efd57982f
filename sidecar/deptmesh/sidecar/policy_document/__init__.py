"""Policy as code: the mesh's whole policy in one reviewed TOML file, checked and applied.

schema.py is the document and its schema (pure); toml_lines.py finds the
line of each key, so that toml_file.py reports every problem as
`file:line: key.path: what is wrong`, and writes documents back;
contracts.py tells which methods the installed contracts declare; live.py
reads the policy in force in Consul; changes.py compares two documents;
rate_card_changes.py refuses rate card changes to months already begun;
apply.py makes a document the policy in force, with check-and-set so that
two applies never interleave. `deptmesh policy check|apply|show` is built on
these (deptmesh.sidecar.cli.policy).
"""

from deptmesh.sidecar.policy_document.apply import (
    ConcurrentPolicyApply,
    PastRateCardChange,
    PolicyApplyError,
    PolicyPlan,
    apply_policy,
    commit_plan,
    plan_policy,
)
from deptmesh.sidecar.policy_document.changes import Change, policy_changes, render_changes
from deptmesh.sidecar.policy_document.contracts import contract_declares
from deptmesh.sidecar.policy_document.live import LivePolicy, read_live_policy
from deptmesh.sidecar.policy_document.schema import (
    SCHEMA_VERSION,
    Department,
    PolicyDocument,
    PolicyDocumentInvalid,
    validate_policy,
)
from deptmesh.sidecar.policy_document.toml_file import (
    load_policy_file,
    parse_policy_text,
    render_policy,
)

__all__ = [
    "SCHEMA_VERSION",
    "Change",
    "ConcurrentPolicyApply",
    "Department",
    "LivePolicy",
    "PastRateCardChange",
    "PolicyApplyError",
    "PolicyDocument",
    "PolicyDocumentInvalid",
    "PolicyPlan",
    "apply_policy",
    "commit_plan",
    "contract_declares",
    "load_policy_file",
    "parse_policy_text",
    "plan_policy",
    "policy_changes",
    "read_live_policy",
    "render_changes",
    "render_policy",
    "validate_policy",
]
