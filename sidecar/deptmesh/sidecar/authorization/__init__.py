"""Who may call whom, and which methods: default deny.

policy.py is the pure core (intentions and method rules, decided once per
policy version); stage.py the authorization stage of the server chain;
sources.py where the policy comes from (Consul intentions and KV, or a file).
"""

from deptmesh.sidecar.authorization.policy import (
    AccessPolicy,
    Decision,
    Intention,
    MethodRules,
    intentions_from_json,
    method_rules_from_json,
    parse_method_rules,
)
from deptmesh.sidecar.authorization.sources import (
    METHOD_RULES_KEY,
    ConsulAccessPolicy,
    FileAccessPolicy,
    parse_policy_document,
)
from deptmesh.sidecar.authorization.stage import AuthorizationStage, PolicySource

__all__ = [
    "METHOD_RULES_KEY",
    "AccessPolicy",
    "AuthorizationStage",
    "ConsulAccessPolicy",
    "Decision",
    "FileAccessPolicy",
    "Intention",
    "MethodRules",
    "PolicySource",
    "intentions_from_json",
    "method_rules_from_json",
    "parse_method_rules",
    "parse_policy_document",
]
