"""ConsulRegistry: the only module that talks to Consul's HTTP API.

py-consul is wrapped because it sets no HTTP timeout unless told and lets the
environment override an explicit token: here every call has a timeout, and an
explicit token (or address) always wins over the environment.

The token is sent in the X-Consul-Token header only (never in a URL), and no
message this module raises holds it. A request Consul refuses (403: no token,
an unknown or revoked one, or one without the permission) raises
RegistryRefused naming what was refused; one that could not be made or
answered raises RegistryUnavailable.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import consul
import consul.callback
import requests

from deptmesh.registry.credentials import consul_token
from deptmesh.registry.model import Health, ServiceInstance
from deptmesh.registry.protocol import RegistryRefused, RegistryUnavailable

__all__ = ["DEFAULT_ADDRESS", "ConsulRegistry"]

DEFAULT_ADDRESS = "127.0.0.1:8500"
# How often Consul calls each instance's grpc.health.v1, and how long it waits.
CHECK_INTERVAL = "1s"
CHECK_TIMEOUT = "1s"
# An instance whose check stays critical this long is removed by Consul itself.
DEREGISTER_CRITICAL_AFTER = "1m"


def _printable(text: str, limit: int = 200) -> str:
    return "".join(c if c.isprintable() else "?" for c in text.strip())[:limit]


class ConsulRegistry:
    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        timeout_seconds: float = 3.0,
    ) -> None:
        """`token` (or the one in `token_file`) is presented on every request; without
        either, $CONSUL_HTTP_TOKEN_FILE or $CONSUL_HTTP_TOKEN (see consul_token)."""
        address = address or os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDRESS
        host, _, port = address.removeprefix("http://").rpartition(":")
        self.address = f"{host}:{port}"
        self._client = consul.Consul(host=host, port=int(port), connections_timeout=timeout_seconds)
        # py-consul prefers CONSUL_HTTP_TOKEN over the argument; we do the opposite.
        self._client.token = consul_token(token, token_file)

    def __repr__(self) -> str:
        return f"ConsulRegistry({self.address!r}, token={'yes' if self.has_token else 'none'})"

    @property
    def has_token(self) -> bool:
        """Whether requests carry a token (without one Consul treats them as anonymous)."""
        return self._client.token is not None

    def register(self, instance: ServiceInstance) -> None:
        check = consul.Check.grpc(
            f"{instance.address}:{instance.check_port or instance.port}",
            CHECK_INTERVAL,
            timeout=CHECK_TIMEOUT,
            deregister=DEREGISTER_CRITICAL_AFTER,
        )
        self._call(
            f"registering {instance.instance_id} as service {instance.service}",
            self._client.agent.service.register,
            instance.service,
            service_id=instance.instance_id,
            address=instance.address,
            port=instance.port,
            tags=list(instance.tags),
            meta=dict(instance.meta),
            check=check,
        )

    def deregister(self, instance_id: str) -> None:
        """Removes the instance; one the agent does not hold is already gone."""
        try:
            self._call(
                f"deregistering {instance_id}", self._client.agent.service.deregister, instance_id
            )
        except RegistryUnavailable as error:
            # With ACLs on, Consul 1.8 answers 500 "Unknown service" instead of 200.
            if "Unknown service" not in str(error.__cause__):
                raise

    def set_draining(self, instance_id: str) -> None:
        # Maintenance mode turns the instance critical at once, without waiting
        # for the next health check.
        self._call(
            f"draining {instance_id}",
            self._client.agent.service.maintenance,
            instance_id,
            True,
            reason="draining",
        )

    def holds(self, instance_id: str) -> bool:
        """Whether the agent this registry talks to holds the instance (an agent that
        restarted without its state has forgotten it)."""

        def found(response: Any) -> bool:
            if response.code == 404:
                return False
            consul.callback.CB._status(response)  # raises on 403 and 5xx
            return True

        result: bool = self._call(
            f"looking up {instance_id} at the agent",
            self._client.http.get,
            found,
            f"/v1/agent/service/{instance_id}",
            headers=self._client.prepare_headers(),
        )
        return result

    def resolve(self, service: str) -> list[ServiceInstance]:
        _, entries = self._call(
            f"the healthy instances of {service}",
            self._client.health.service,
            service,
            passing=True,
        )
        return _instances(entries)

    def query(
        self, service: str, index: int, wait_seconds: float
    ) -> tuple[int, list[ServiceInstance]]:
        new_index, entries = self._call(
            f"the healthy instances of {service}",
            self._client.health.service,
            service,
            passing=True,
            index=index or None,
            wait=f"{max(1, int(wait_seconds))}s",
        )
        return int(new_index), _instances(entries)

    def services(self) -> list[ServiceInstance]:
        _, names = self._call("the catalog", self._client.catalog.services)
        found: list[ServiceInstance] = []
        for name in sorted(names):
            if name == "consul":
                continue
            _, entries = self._call(f"the instances of {name}", self._client.health.service, name)
            found += _instances(entries)
        return found

    def connect_leaf(self, service: str, index: int, wait_seconds: float) -> tuple[int, Any]:
        """The service's Connect leaf (CertPEM, PrivateKeyPEM, ...), blocking on `index`."""
        return self._blocking_get(
            f"the Connect leaf of {service}",
            f"/v1/agent/connect/ca/leaf/{service}",
            index,
            wait_seconds,
        )

    def confirm_service_identity(self, service: str, spiffe_id: str) -> None:
        """Raises RegistryRefused unless this token may still act as `service`.

        The agent answers the leaf endpoint from its cache, even for a token
        revoked since: only renewing the leaf asks the servers. Consul's Connect
        authorize endpoint checks what holding the leaf takes (service:write on
        `service`) on every request; whether it authorizes `spiffe_id` (the
        service's own) to call `service` is beside the point and ignored.
        """
        self._http_json(
            "POST",
            f"the Connect leaf of {service}",
            "/v1/agent/connect/authorize",
            {"Target": service, "ClientCertURI": spiffe_id},
        )

    def connect_roots(self, index: int, wait_seconds: float) -> tuple[int, Any]:
        """The Connect trust bundle (TrustDomain, Roots), blocking on `index`."""
        return self._blocking_get(
            "the Connect roots", "/v1/agent/connect/ca/roots", index, wait_seconds
        )

    def rotate_connect_ca(self, private_key_pem: str) -> None:
        """Makes the built-in Connect CA sign with a new key: a new active root.

        Consul cross-signs the new root with the old one and keeps both in the
        roots, so leaves from either verify while every agent renews its leaves
        onto the new root (each within a random delay of up to 30 s). The
        built-in CA's other settings are kept.
        """
        what = "the Connect CA configuration"
        current = self._http_json("GET", what, "/v1/connect/ca/configuration")
        config = dict(current["Config"]) if current["Provider"] == "consul" else {}
        config["PrivateKey"] = private_key_pem
        config.pop("RootCert", None)  # Consul makes the root for the new key
        self._http_json(
            "PUT",
            f"rotating {what}",
            "/v1/connect/ca/configuration",
            {"Provider": "consul", "Config": config},
        )

    def intentions(self, index: int, wait_seconds: float) -> tuple[int, list[dict[str, Any]]]:
        """Every Connect intention (SourceName, DestinationName, Action), blocking on `index`."""
        new_index, body = self._blocking_get(
            "the intentions", "/v1/connect/intentions", index, wait_seconds
        )
        return new_index, list(body or [])

    def set_intention(self, source: str, destination: str, action: str) -> None:
        """Creates or updates the intention source -> destination; a no-op when it is so."""
        _, existing = self.intentions(0, 0)
        match = next(
            (
                i
                for i in existing
                if i["SourceName"] == source and i["DestinationName"] == destination
            ),
            None,
        )
        if match is not None and match["Action"] == action:
            return
        what = f"writing the intention {source} -> {destination}"
        body = {"SourceName": source, "DestinationName": destination, "Action": action}
        if match is None:
            self._http_json("POST", what, "/v1/connect/intentions", body)
        else:
            self._http_json("PUT", what, f"/v1/connect/intentions/{match['ID']}", body)

    def delete_intention(self, intention_id: str) -> None:
        self._http_json(
            "DELETE",
            f"deleting the intention {intention_id}",
            f"/v1/connect/intentions/{intention_id}",
        )

    def kv_value(self, key: str, index: int, wait_seconds: float) -> tuple[int, str | None]:
        """The text stored at `key` (None when absent), blocking on `index`."""
        new_index, body = self._blocking_get(f"reading {key}", f"/v1/kv/{key}", index, wait_seconds)
        if not body or body[0].get("Value") is None:
            return new_index, None
        return new_index, base64.b64decode(body[0]["Value"]).decode()

    def kv_put(self, key: str, value: str) -> None:
        self._call(f"writing {key}", self._client.kv.put, key, value)

    def kv_entry(self, key: str) -> tuple[int, str | None]:
        """The text at `key` and its ModifyIndex, for check-and-set; (0, None) when absent."""
        _, body = self._blocking_get(f"reading {key}", f"/v1/kv/{key}", 0, 0)
        if not body:
            return 0, None
        value = body[0].get("Value")
        text = None if value is None else base64.b64decode(value).decode()
        return int(body[0]["ModifyIndex"]), text

    def kv_put_if(self, key: str, value: str, modify_index: int) -> bool:
        """Writes `key` only if its ModifyIndex is still `modify_index` (0: only if absent);
        False, and nothing written, when it moved."""
        written: bool = self._call(
            f"writing {key}", self._client.kv.put, key, value, cas=modify_index
        )
        return written

    def kv_write_all(self, writes: Mapping[str, tuple[int, str | None]]) -> bool:
        """Writes every key (None deletes it) in one Consul transaction, each only if its
        ModifyIndex is still the one given (0: only if absent); False, and nothing
        written, when any of them moved."""
        operations = [
            {"KV": {"Verb": "delete-cas", "Key": key, "Index": index}}
            if value is None
            else {
                "KV": {
                    "Verb": "cas",
                    "Key": key,
                    "Index": index,
                    "Value": base64.b64encode(value.encode()).decode(),
                }
            }
            for key, (index, value) in writes.items()
        ]

        def committed(response: Any) -> bool:
            if response.code == 409:  # Consul rolled the transaction back: why?
                errors = json.loads(response.body or "{}").get("Errors") or []
                denied = [e["What"] for e in errors if "Permission denied" in e.get("What", "")]
                if denied:
                    raise consul.ACLPermissionDenied(denied[0])
                return False
            consul.callback.CB._status(response, allow_404=False)
            return True

        what = f"writing {', '.join(writes)}"
        result: bool = self._call(
            what,
            self._client.http.put,
            committed,
            "/v1/txn",
            data=json.dumps(operations),
            headers=self._client.prepare_headers(),
        )
        return result

    def kv_delete(self, key: str) -> None:
        self._call(f"deleting {key}", self._client.kv.delete, key)

    def kv_values(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` and the text stored there."""
        _, entries = self._call(f"reading {prefix}", self._client.kv.get, prefix, recurse=True)
        return {
            entry["Key"]: entry["Value"].decode()
            for entry in entries or []
            if entry.get("Value") is not None
        }

    # The ACL system (deptmesh.registry.acl decides which policies and tokens exist).

    def acl_policies(self) -> list[dict[str, Any]]:
        """Every ACL policy: ID, Name, Description (not the rules)."""
        return list(self._http_json("GET", "the ACL policies", "/v1/acl/policies") or [])

    def acl_write_policy(self, policy: Mapping[str, Any], policy_id: str | None = None) -> str:
        """Creates the policy (Name, Description, Rules), or updates `policy_id`; its ID."""
        what = f"writing the ACL policy {policy['Name']}"
        path = "/v1/acl/policy" if policy_id is None else f"/v1/acl/policy/{policy_id}"
        written = self._http_json("PUT", what, path, dict(policy))
        return str(written["ID"])

    def acl_create_token(self, token: Mapping[str, Any]) -> dict[str, Any]:
        """Creates a token (Description, Policies, ServiceIdentities, NodeIdentities,
        optionally its SecretID); Consul's answer, AccessorID and SecretID among it."""
        what = f"creating the ACL token {token.get('Description', '')!r}"
        created: dict[str, Any] = self._http_json("PUT", what, "/v1/acl/token", dict(token))
        return created

    def acl_delete_token(self, accessor_id: str) -> None:
        self._http_json(
            "DELETE", f"deleting the ACL token {accessor_id}", f"/v1/acl/token/{accessor_id}"
        )

    def acl_token_self(self) -> dict[str, Any]:
        """What Consul knows of this registry's own token (its policies and identities)."""
        found: dict[str, Any] = self._http_json("GET", "this token", "/v1/acl/token/self")
        return found

    def _blocking_get(
        self, what: str, path: str, index: int, wait_seconds: float
    ) -> tuple[int, Any]:
        params = [("index", str(index)), ("wait", f"{max(1, int(wait_seconds))}s")] if index else []
        new_index, body = self._call(
            what,
            self._client.http.get,
            consul.callback.CB.json(index=True),
            path,
            params=params,
            headers=self._client.prepare_headers(),
        )
        return int(new_index), body

    def _http_json(
        self, method: str, what: str, path: str, body: Mapping[str, Any] | None = None
    ) -> Any:
        """Consul's JSON answer to one request (None for an empty one)."""
        headers = self._client.prepare_headers()
        if method == "GET":
            return self._call(what, self._client.http.get, _answer, path, headers=headers)
        send: Callable[..., Any] = {
            "PUT": self._client.http.put,
            "POST": self._client.http.post,
            "DELETE": self._client.http.delete,
        }[method]
        data = "" if body is None else json.dumps(body)
        return self._call(what, send, _answer, path, data=data, headers=headers)

    def _call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except consul.ACLPermissionDenied as error:
            raise RegistryRefused(self._refusal(what, str(error))) from error
        except (requests.RequestException, consul.ConsulException) as error:
            raise RegistryUnavailable(f"consul: {what}: {error}") from error

    def _refusal(self, what: str, answer: str) -> str:
        """One line naming what Consul refused and why, never the token."""
        token = self._client.token
        reason = _printable(answer) or "403"
        if token:
            reason = reason.replace(token, "<token>")  # Consul does not echo it; be sure
        if token is None:
            why = "no token was given"
        elif "ACL not found" in reason:
            why = "the token is unknown or was revoked"
        else:
            why = "the token does not allow it"
        return f"consul refused {what}: {reason} ({why})"


def _answer(response: Any) -> Any:
    consul.callback.CB._status(response, allow_404=False)  # raises on 4xx and 5xx
    return json.loads(response.body) if response.body.strip() else None


def _instances(entries: list[dict[str, Any]]) -> list[ServiceInstance]:
    instances = []
    for entry in entries:
        service = entry["Service"]
        statuses = {check["Status"] for check in entry.get("Checks", [])}
        health = next(
            (h for h in (Health.CRITICAL, Health.WARNING) if h.value in statuses), Health.PASSING
        )
        instances.append(
            ServiceInstance(
                service=service["Service"],
                instance_id=service["ID"],
                address=service["Address"] or entry["Node"]["Address"],
                port=int(service["Port"]),
                tags=tuple(service.get("Tags") or ()),
                meta=dict(service.get("Meta") or {}),
                health=health,
            )
        )
    return sorted(instances, key=lambda i: i.instance_id)
