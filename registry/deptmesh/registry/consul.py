"""ConsulRegistry: the only module that talks to Consul's catalog and health API.

py-consul is wrapped because it sets no HTTP timeout unless told and lets the
environment override an explicit token: here every call has a timeout, and an
explicit token (or address) always wins over CONSUL_HTTP_TOKEN / CONSUL_HTTP_ADDR.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import consul
import consul.callback
import requests

from deptmesh.registry.model import Health, ServiceInstance
from deptmesh.registry.protocol import RegistryUnavailable

DEFAULT_ADDRESS = "127.0.0.1:8500"
# How often Consul calls each instance's grpc.health.v1, and how long it waits.
CHECK_INTERVAL = "1s"
CHECK_TIMEOUT = "1s"
# An instance whose check stays critical this long is removed by Consul itself.
DEREGISTER_CRITICAL_AFTER = "1m"


class ConsulRegistry:
    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        timeout_seconds: float = 3.0,
    ) -> None:
        address = address or os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDRESS
        host, _, port = address.removeprefix("http://").rpartition(":")
        self.address = f"{host}:{port}"
        self._client = consul.Consul(host=host, port=int(port), connections_timeout=timeout_seconds)
        # py-consul prefers CONSUL_HTTP_TOKEN over the argument; we do the opposite.
        self._client.token = token if token is not None else os.environ.get("CONSUL_HTTP_TOKEN")

    def register(self, instance: ServiceInstance) -> None:
        check = consul.Check.grpc(
            f"{instance.address}:{instance.check_port or instance.port}",
            CHECK_INTERVAL,
            timeout=CHECK_TIMEOUT,
            deregister=DEREGISTER_CRITICAL_AFTER,
        )
        self._call(
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
        self._call(self._client.agent.service.deregister, instance_id)

    def set_draining(self, instance_id: str) -> None:
        # Maintenance mode turns the instance critical at once, without waiting
        # for the next health check.
        self._call(self._client.agent.service.maintenance, instance_id, True, reason="draining")

    def resolve(self, service: str) -> list[ServiceInstance]:
        _, entries = self._call(self._client.health.service, service, passing=True)
        return _instances(entries)

    def query(
        self, service: str, index: int, wait_seconds: float
    ) -> tuple[int, list[ServiceInstance]]:
        new_index, entries = self._call(
            self._client.health.service,
            service,
            passing=True,
            index=index or None,
            wait=f"{max(1, int(wait_seconds))}s",
        )
        return int(new_index), _instances(entries)

    def services(self) -> list[ServiceInstance]:
        _, names = self._call(self._client.catalog.services)
        found: list[ServiceInstance] = []
        for name in sorted(names):
            if name == "consul":
                continue
            _, entries = self._call(self._client.health.service, name)
            found += _instances(entries)
        return found

    def connect_leaf(self, service: str, index: int, wait_seconds: float) -> tuple[int, Any]:
        """The service's Connect leaf (CertPEM, PrivateKeyPEM, ...), blocking on `index`."""
        return self._blocking_get(f"/v1/agent/connect/ca/leaf/{service}", index, wait_seconds)

    def connect_roots(self, index: int, wait_seconds: float) -> tuple[int, Any]:
        """The Connect trust bundle (TrustDomain, Roots), blocking on `index`."""
        return self._blocking_get("/v1/agent/connect/ca/roots", index, wait_seconds)

    def rotate_connect_ca(self, private_key_pem: str) -> None:
        """Makes the built-in Connect CA sign with a new key: a new active root.

        Consul cross-signs the new root with the old one and keeps both in the
        roots, so leaves from either verify while every agent renews its leaves
        onto the new root (each within a random delay of up to 30 s). The
        built-in CA's other settings are kept.
        """
        current = self._call(
            self._client.http.get,
            consul.callback.CB.json(),
            "/v1/connect/ca/configuration",
            headers=self._client.prepare_headers(),
        )
        config = dict(current["Config"]) if current["Provider"] == "consul" else {}
        config["PrivateKey"] = private_key_pem
        config.pop("RootCert", None)  # Consul makes the root for the new key
        self._call(
            self._client.http.put,
            consul.callback.CB.boolean(),
            "/v1/connect/ca/configuration",
            data=json.dumps({"Provider": "consul", "Config": config}),
            headers=self._client.prepare_headers(),
        )

    def intentions(self, index: int, wait_seconds: float) -> tuple[int, list[dict[str, Any]]]:
        """Every Connect intention (SourceName, DestinationName, Action), blocking on `index`."""
        new_index, body = self._blocking_get("/v1/connect/intentions", index, wait_seconds)
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
        body = json.dumps({"SourceName": source, "DestinationName": destination, "Action": action})
        if match is None:
            self._call(
                self._client.http.post,
                consul.callback.CB.json(),
                "/v1/connect/intentions",
                data=body,
                headers=self._client.prepare_headers(),
            )
        else:
            self._call(
                self._client.http.put,
                consul.callback.CB.boolean(),
                f"/v1/connect/intentions/{match['ID']}",
                data=body,
                headers=self._client.prepare_headers(),
            )

    def delete_intention(self, intention_id: str) -> None:
        self._call(
            self._client.http.delete,
            consul.callback.CB.boolean(),
            f"/v1/connect/intentions/{intention_id}",
            headers=self._client.prepare_headers(),
        )

    def kv_value(self, key: str, index: int, wait_seconds: float) -> tuple[int, str | None]:
        """The text stored at `key` (None when absent), blocking on `index`."""
        new_index, body = self._blocking_get(f"/v1/kv/{key}", index, wait_seconds)
        if not body or body[0].get("Value") is None:
            return new_index, None
        return new_index, base64.b64decode(body[0]["Value"]).decode()

    def _blocking_get(self, path: str, index: int, wait_seconds: float) -> tuple[int, Any]:
        params = [("index", str(index)), ("wait", f"{max(1, int(wait_seconds))}s")] if index else []
        new_index, body = self._call(
            self._client.http.get,
            consul.callback.CB.json(index=True),
            path,
            params=params,
            headers=self._client.prepare_headers(),
        )
        return int(new_index), body

    def kv_put(self, key: str, value: str) -> None:
        self._call(self._client.kv.put, key, value)

    def kv_delete(self, key: str) -> None:
        self._call(self._client.kv.delete, key)

    def kv_values(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` and the text stored there."""
        _, entries = self._call(self._client.kv.get, prefix, recurse=True)
        return {
            entry["Key"]: entry["Value"].decode()
            for entry in entries or []
            if entry.get("Value") is not None
        }

    @staticmethod
    def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (requests.RequestException, consul.ConsulException) as error:
            raise RegistryUnavailable(f"consul: {error}") from error


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
