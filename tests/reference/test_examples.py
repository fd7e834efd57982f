"""Every method's examples in the API reference, run as a reader runs them: the
`deptmesh call` line as the command, the Python program as a program, against the
departments as real processes with their demo data, on a Consul agent with ACLs
(default deny) and the company's policy.

A placeholder (CLAIM_ID) is replaced by the value the call its example names
returns, made afresh for each run; YOUR_SERVICE (a method no one may call under
the company's policy) by an identity of the test's own, which an extra
intention lets call that department.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deptmesh.registry.agent import DevAgent
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services.company_policy import apply_company_policy, company_policy
from deptmesh.sidecar.cli.command import main
from deptmesh.sidecar.contracts import Contracts
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.reference.catalog import MethodDoc, catalog_of
from deptmesh.sidecar.reference.examples import ANY_CALLER, Example, Given, example_requests
from tests.integration.servers import wait_for

DEPARTMENTS = ("hr", "finance", "reimbursement", "travel", "metering")
# Who calls in the examples of methods no one may call under the company's policy.
EXAMPLE_CALLER = "docs-example"
IDENTITIES = (*DEPARTMENTS, "self-service", EXAMPLE_CALLER)
CATALOG = catalog_of(Contracts.installed(), company_policy(), example_requests())
METHODS = {method.path: method for method in CATALOG.methods()}


@dataclass
class Mesh:
    address: str
    tokens: dict[str, Path]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("examples")
    with DevAgent() as agent, ExitStack() as stack:
        tokens = agent.admin().mesh_tokens(IDENTITIES)
        files = {}
        for name, token in tokens.departments.items():
            files[name] = workdir / f"{name}.token"
            token.write_file(files[name])
        platform = ConsulRegistry(agent.address, token=tokens.platform.secret_id)
        unreachable = {m.department for m in METHODS.values() if m.example.caller == ANY_CALLER}
        apply_company_policy(
            platform, *((EXAMPLE_CALLER, department, "allow") for department in unreachable)
        )
        processes = [
            stack.enter_context(
                DepartmentProcess(
                    f"deptmesh.services.{name}",
                    [
                        *("--port", "0", "--db", str(workdir / f"{name}.db"), "--seed-demo-data"),
                        *("--consul-address", agent.address),
                        *("--consul-token-file", str(files[name])),
                    ],
                    workdir / f"{name}.log",
                )
            )
            for name in DEPARTMENTS
        ]
        for process in processes:
            process.start()
        # Run last: every department is told to drain at once, then each is waited for.
        stack.callback(lambda: [p.send_signal(signal.SIGTERM) for p in processes])
        wait_for(
            lambda: all(platform.resolve(name) for name in DEPARTMENTS),
            timeout=60,
            what="every department passing Consul's health check",
        )
        yield Mesh(agent.address, files)


def _environ(mesh: Mesh, caller: str) -> dict[str, str]:
    """The environment an example expects for a caller: the agent's address and the
    caller's token file."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in ("CONSUL_HTTP_TOKEN", "DEPTMESH_DEV_DIR")
    }
    return {
        **environ,
        "CONSUL_HTTP_ADDR": mesh.address,
        "CONSUL_HTTP_TOKEN_FILE": str(mesh.tokens[caller]),
    }


class Caller:
    """Makes this process's environment a caller's, for `deptmesh call` run in it."""

    def __init__(self, mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> None:
        self._mesh = mesh
        self._monkeypatch = monkeypatch

    def __call__(self, caller: str) -> None:
        for name, value in _environ(self._mesh, caller).items():
            self._monkeypatch.setenv(name, value)
        for name in ("CONSUL_HTTP_TOKEN", "DEPTMESH_DEV_DIR"):
            self._monkeypatch.delenv(name, raising=False)


@pytest.fixture
def as_caller(mesh, monkeypatch) -> Caller:
    return Caller(mesh, monkeypatch)


# Python examples run side by side, each waiting on the network more than it computes;
# a few at a time, as Consul's agent serves at most 200 connections from one address.
PYTHON_RUNS_AT_ONCE = 4


def _run_program(program: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=False,
        env=environ,
        timeout=60,
    )


@pytest.fixture(scope="module")
def python_runs(mesh) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Every method's Python example, placeholders filled, run as a program of its own."""
    with ThreadPoolExecutor(PYTHON_RUNS_AT_ONCE) as pool, pytest.MonkeyPatch.context() as patch:
        as_caller = Caller(mesh, patch)
        runs = {}
        for path, method in METHODS.items():
            example = _example(method)
            program = _filled(as_caller, example, example.python)
            runs[path] = pool.submit(_run_program, program, _environ(mesh, _caller(example)))
        yield runs


def _caller(example: Example) -> str:
    return EXAMPLE_CALLER if example.caller == ANY_CALLER else example.caller


def _call(as_caller: Caller, example: Example, request: dict[str, Any]) -> dict[str, Any]:
    """`deptmesh call` of `example`'s method with `request`; its answer."""
    as_caller(_caller(example))
    target = example.method_path.removeprefix("/")
    argv = ["call", example.department, target, "--as", _caller(example)]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = main([*argv, "--json", json.dumps(request)])
    assert status == 0, f"{example.method_path} {request}"
    answer: dict[str, Any] = json.loads(output.getvalue())
    return answer


def _value(as_caller: Caller, given: Given) -> str:
    """The value a placeholder stands for: the field of a fresh answer of its call."""
    source = METHODS[given.method_path].example
    assert source is not None
    request = json.dumps(given.request if given.request is not None else source.request)
    for inner in source.given:
        request = request.replace(inner.placeholder, _value(as_caller, inner))
    value: Any = _call(as_caller, source, json.loads(request))
    for name in given.field.split("."):
        value = value[name]
    assert isinstance(value, str)
    return value


def _filled(as_caller: Caller, example: Example, text: str) -> str:
    for given in example.given:
        text = text.replace(given.placeholder, _value(as_caller, given))
    return text.replace(ANY_CALLER, EXAMPLE_CALLER)


def _example(method: MethodDoc) -> Example:
    assert method.example is not None, f"{method.path} has no entry in examples.toml"
    return method.example


@pytest.mark.parametrize("path", sorted(METHODS))
class TestExamples:
    def test_the_command_line_example_answers(self, path, as_caller, capsys):
        """The `deptmesh call` line, placeholders filled, exits 0 printing the response
        as JSON."""
        example = _example(METHODS[path])
        command = shlex.split(_filled(as_caller, example, example.command))
        capsys.readouterr()
        as_caller(_caller(example))
        assert command[:2] == ["deptmesh", "call"]
        status = main(command[1:])
        out, err = capsys.readouterr()
        assert (status, err) == (0, ""), err
        assert isinstance(json.loads(out), dict)

    def test_the_python_example_answers(self, path, python_runs):
        """The Python program, placeholders filled, run as a program of its own, prints the
        response as JSON."""
        finished = python_runs[path].result()
        assert finished.returncode == 0, finished.stderr
        assert isinstance(json.loads(finished.stdout), dict)
