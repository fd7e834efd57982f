"""The generated rules and configurations, checked and unit-tested by the real promtool
(and Alertmanager's amtool): every alerting rule fires on a series that breaks it and
stays quiet on one that does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deptmesh.sidecar.monitoring import (
    ALERTS,
    PrometheusSetup,
    alertmanager_config,
    prometheus_config,
    prometheus_rules,
    render,
)
from deptmesh.sidecar.policy_document import PolicyDocument, load_policy_file
from tests.monitoring.prometheus_programs import PrometheusPrograms

COMPANY_POLICY = (
    Path(__file__).resolve().parents[2] / "services/deptmesh/services/company_policy.toml"
)
HR_GET = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
# An instance's labels, as the generated scrape configuration gives them.
TARGET = 'job="deptmesh", instance="10.0.0.1:9100", department="hr"'


@pytest.fixture(scope="module")
def company_policy() -> PolicyDocument:
    return load_policy_file(COMPANY_POLICY)


def _calls(
    caller: str, metric: str, per_second: float, *, method: str = HR_GET, **labels: str
) -> dict[str, str]:
    """A counter of hr's, growing `per_second` for 200 minutes at one sample a minute."""
    extra = "".join(f', {key}="{value}"' for key, value in labels.items())
    series = (
        f'deptmesh_rpc_server_{metric}{{{TARGET}, service="hr", caller="{caller}",'
        f' method="{method}"{extra}}}'
    )
    return {"series": series, "values": f"0+{per_second * 60:g}x200"}


def _gauge(series: str, value: float) -> dict[str, str]:
    return {"series": series, "values": f"{value:g}x100"}


def _alerts(*alerts: dict[str, str]) -> list[dict[str, Any]]:
    return [{"exp_labels": labels} for labels in alerts]


def _case(
    eval_time: str, alert: str, series: list[dict[str, str]], *fired: dict[str, str]
) -> dict[str, Any]:
    """A promtool test: `series` over time; at `eval_time`, `alert` fires exactly `fired`."""
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": eval_time, "alertname": alert, "exp_alerts": _alerts(*fired)}
        ],
    }


def _traffic(caller: str, tier: str) -> dict[str, str]:
    return {
        "service": "hr",
        "caller": caller,
        "department": "hr",
        "kind": "traffic",
        "tier": tier,
        "severity": "warning",
    }


def _caller(caller: str, severity: str) -> dict[str, str]:
    return {
        "service": "hr",
        "caller": caller,
        "department": "hr",
        "kind": "traffic",
        "severity": severity,
    }


def _up_everywhere_but_hr() -> list[dict[str, str]]:
    return [
        _gauge(f'up{{job="deptmesh", instance="{name}:1", department="{name}"}}', 1)
        for name in ("finance", "reimbursement", "travel")
    ]


STALE_CACHE = f'deptmesh_registry_cache_staleness_seconds{{{TARGET}, watched_service="finance"}}'


# (alert, cases): each case fires exactly what it lists, most of them nothing.
CASES: dict[str, list[dict[str, Any]]] = {
    "DeptmeshCallerTrafficAboveThreshold": [
        # reimbursement is critical on hr (200/s: alerted above 160), travel standard (50/s: 40)
        _case(
            "10m",
            "DeptmeshCallerTrafficAboveThreshold",
            [
                _calls("reimbursement", "requests_total", 170, status="OK"),
                _calls("travel", "requests_total", 45, status="OK"),
            ],
            _traffic("reimbursement", "critical"),
            _traffic("travel", "standard"),
        ),
        _case(
            "10m",
            "DeptmeshCallerTrafficAboveThreshold",
            [
                _calls("reimbursement", "requests_total", 150, status="OK"),
                _calls("travel", "requests_total", 35, status="OK"),
            ],
        ),
        # above the threshold for less than traffic_for (5m): not yet
        _case(
            "3m",
            "DeptmeshCallerTrafficAboveThreshold",
            [_calls("travel", "requests_total", 45, status="OK")],
        ),
    ],
    "DeptmeshCallerCloseToQuota": [
        _case(
            "10m",
            "DeptmeshCallerCloseToQuota",
            [
                _calls("travel", "requests_total", 100, status="OK"),
                _calls("travel", "throttled_total", 2),
            ],
            _caller("travel", "info"),
        ),
        _case(
            "10m",
            "DeptmeshCallerCloseToQuota",
            [
                _calls("travel", "requests_total", 100, status="OK"),
                _calls("travel", "throttled_total", 0.5),
            ],
        ),
    ],
    "DeptmeshCallerThrottled": [
        _case(
            "10m",
            "DeptmeshCallerThrottled",
            [
                _calls("travel", "requests_total", 100, status="OK"),
                _calls("travel", "throttled_total", 20),
            ],
            _caller("travel", "warning"),
        ),
        _case(
            "10m",
            "DeptmeshCallerThrottled",
            [
                _calls("travel", "requests_total", 100, status="OK"),
                _calls("travel", "throttled_total", 2),
            ],
        ),
    ],
    # hr: availability 0.999, so a 0.1% budget; fast burn 14.4x (1.44%), slow 3x (0.3%)
    "DeptmeshErrorBudgetBurnFast": [
        _case(
            "70m",
            "DeptmeshErrorBudgetBurnFast",
            [
                _calls("travel", "requests_total", 100, status="OK"),
                _calls("travel", "errors_total", 5),
            ],
            {"service": "hr", "method": HR_GET, "department": "hr", "severity": "page"},
        ),
        _case(
            "70m",
            "DeptmeshErrorBudgetBurnFast",
            [
                _calls("travel", "requests_total", 100, status="OK"),
                _calls("travel", "errors_total", 0.5),
            ],
        ),
    ],
    "DeptmeshErrorBudgetBurnSlow": [
        _case(
            "3h",
            "DeptmeshErrorBudgetBurnSlow",
            [
                _calls("travel", "requests_total", 100, status="OK"),
                _calls("travel", "errors_total", 0.5),
            ],
            {"service": "hr", "method": HR_GET, "department": "hr", "severity": "warning"},
        ),
        _case(
            "3h",
            "DeptmeshErrorBudgetBurnSlow",
            [
                _calls("travel", "requests_total", 100, status="OK"),
                _calls("travel", "errors_total", 0.05),
            ],
        ),
    ],
    # hr: 99% of calls within 0.25 s, so a 1% budget; fast 14.4%, slow 3%
    "DeptmeshLatencyBudgetBurnFast": [
        _case(
            "70m",
            "DeptmeshLatencyBudgetBurnFast",
            [
                _calls("travel", "duration_seconds_count", 100, status="OK"),
                _calls("travel", "duration_seconds_bucket", 70, status="OK", le="0.25"),
            ],
            {"service": "hr", "method": HR_GET, "department": "hr", "severity": "page"},
        ),
        _case(
            "70m",
            "DeptmeshLatencyBudgetBurnFast",
            [
                _calls("travel", "duration_seconds_count", 100, status="OK"),
                _calls("travel", "duration_seconds_bucket", 99.9, status="OK", le="0.25"),
            ],
        ),
    ],
    "DeptmeshLatencyBudgetBurnSlow": [
        _case(
            "3h",
            "DeptmeshLatencyBudgetBurnSlow",
            [
                _calls("travel", "duration_seconds_count", 100, status="OK"),
                _calls("travel", "duration_seconds_bucket", 95, status="OK", le="0.25"),
            ],
            {"service": "hr", "method": HR_GET, "department": "hr", "severity": "warning"},
        ),
        _case(
            "3h",
            "DeptmeshLatencyBudgetBurnSlow",
            [
                _calls("travel", "duration_seconds_count", 100, status="OK"),
                _calls("travel", "duration_seconds_bucket", 99.9, status="OK", le="0.25"),
            ],
        ),
    ],
    "DeptmeshInstanceDown": [
        _case(
            "5m",
            "DeptmeshInstanceDown",
            [_gauge(f"up{{{TARGET}}}", 0)],
            {
                "job": "deptmesh",
                "instance": "10.0.0.1:9100",
                "department": "hr",
                "severity": "warning",
            },
        ),
        _case("5m", "DeptmeshInstanceDown", [_gauge(f"up{{{TARGET}}}", 1)]),
    ],
    "DeptmeshDepartmentNoHealthyInstance": [
        _case(
            "5m",
            "DeptmeshDepartmentNoHealthyInstance",
            [_gauge(f"up{{{TARGET}}}", 0), *_up_everywhere_but_hr()],
            {"department": "hr", "severity": "page"},
        ),
        _case(
            "5m",
            "DeptmeshDepartmentNoHealthyInstance",
            [
                _gauge(f"up{{{TARGET}}}", 0),
                _gauge('up{job="deptmesh", instance="10.0.0.2:9100", department="hr"}', 1),
                *_up_everywhere_but_hr(),
            ],
        ),
    ],
    # promtool's clock starts at 0: a leaf expiring at 1 h is within 24 h, at 3 days not
    "DeptmeshConnectLeafExpiring": [
        _case(
            "15m",
            "DeptmeshConnectLeafExpiring",
            [_gauge(f"deptmesh_connect_leaf_expiry_timestamp_seconds{{{TARGET}}}", 3600)],
            {
                "job": "deptmesh",
                "instance": "10.0.0.1:9100",
                "department": "hr",
                "severity": "warning",
            },
        ),
        _case(
            "15m",
            "DeptmeshConnectLeafExpiring",
            [_gauge(f"deptmesh_connect_leaf_expiry_timestamp_seconds{{{TARGET}}}", 3 * 86400)],
        ),
    ],
    "DeptmeshRegistryCacheStale": [
        _case(
            "5m",
            "DeptmeshRegistryCacheStale",
            [
                _gauge(
                    STALE_CACHE,
                    400,
                )
            ],
            {
                "job": "deptmesh",
                "instance": "10.0.0.1:9100",
                "department": "hr",
                "watched_service": "finance",
                "severity": "warning",
            },
        ),
        _case(
            "5m",
            "DeptmeshRegistryCacheStale",
            [
                _gauge(
                    STALE_CACHE,
                    20,
                )
            ],
        ),
    ],
    "DeptmeshTraceStoreNearBound": [
        _case(
            "15m",
            "DeptmeshTraceStoreNearBound",
            [
                _gauge(f"deptmesh_trace_store_spans{{{TARGET}}}", 95),
                _gauge(f"deptmesh_trace_store_capacity_spans{{{TARGET}}}", 100),
            ],
            {
                "job": "deptmesh",
                "instance": "10.0.0.1:9100",
                "department": "hr",
                "severity": "info",
            },
        ),
        _case(
            "15m",
            "DeptmeshTraceStoreNearBound",
            [
                _gauge(f"deptmesh_trace_store_spans{{{TARGET}}}", 50),
                _gauge(f"deptmesh_trace_store_capacity_spans{{{TARGET}}}", 100),
            ],
        ),
    ],
    "DeptmeshUsageSpoolNearBound": [
        _case(
            "15m",
            "DeptmeshUsageSpoolNearBound",
            [
                _gauge(f"deptmesh_usage_spool_records{{{TARGET}}}", 950),
                _gauge(f"deptmesh_usage_spool_capacity_records{{{TARGET}}}", 1000),
            ],
            {
                "job": "deptmesh",
                "instance": "10.0.0.1:9100",
                "department": "hr",
                "severity": "warning",
            },
        ),
        _case(
            "15m",
            "DeptmeshUsageSpoolNearBound",
            [
                _gauge(f"deptmesh_usage_spool_records{{{TARGET}}}", 10),
                _gauge(f"deptmesh_usage_spool_capacity_records{{{TARGET}}}", 1000),
            ],
        ),
    ],
}


def _without_annotations(rules: dict[str, Any]) -> dict[str, Any]:
    """The rules with their annotations left out: promtool compares annotations whole,
    and these tests are about when each alert fires and with which labels."""
    groups = []
    for group in rules["groups"]:
        stripped = [
            {k: v for k, v in rule.items() if k != "annotations"} for rule in group["rules"]
        ]
        groups.append({**group, "rules": stripped})
    return {"groups": groups}


class TestGeneratedRules:
    def test_promtool_checks_the_rules(
        self,
        prometheus_programs: PrometheusPrograms,
        company_policy: PolicyDocument,
        tmp_path: Path,
    ) -> None:
        """The company policy's rules pass `promtool check rules`, lint included."""
        rules = tmp_path / "rules.json"
        rules.write_text(render(prometheus_rules(company_policy)))
        result = prometheus_programs.promtool_run("check", "rules", rules)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_every_alert_has_a_runbook_line(self, company_policy: PolicyDocument) -> None:
        """Every alerting rule carries a one-line runbook and a summary."""
        rules = [
            r
            for g in prometheus_rules(company_policy)["groups"]
            for r in g["rules"]
            if "alert" in r
        ]
        assert {rule["alert"] for rule in rules} == set(ALERTS)
        for rule in rules:
            runbook = rule["annotations"]["runbook"]
            assert runbook, rule["alert"]
            assert "\n" not in runbook, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]

    def test_every_alert_has_unit_tests(self) -> None:
        """Each alert has a case where it fires and one where it does not."""
        assert set(CASES) == set(ALERTS)
        for alert, cases in CASES.items():
            fired = [bool(case["alert_rule_test"][0]["exp_alerts"]) for case in cases]
            assert True in fired, alert
            assert False in fired, alert

    @pytest.mark.parametrize("alert", ALERTS)
    def test_promtool_unit_tests_of_the_alert(
        self,
        alert: str,
        prometheus_programs: PrometheusPrograms,
        company_policy: PolicyDocument,
        tmp_path: Path,
    ) -> None:
        """`promtool test rules`: the alert fires on its firing cases, and only there."""
        rules = tmp_path / "rules.json"
        rules.write_text(render(_without_annotations(prometheus_rules(company_policy))))
        tests = tmp_path / "tests.json"
        tests.write_text(
            json.dumps(
                {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": CASES[alert]}
            )
        )
        result = prometheus_programs.promtool_run("test", "rules", tests)
        assert result.returncode == 0, result.stdout + result.stderr


class TestGeneratedConfigurations:
    def test_promtool_checks_the_prometheus_configuration(
        self,
        prometheus_programs: PrometheusPrograms,
        company_policy: PolicyDocument,
        tmp_path: Path,
    ) -> None:
        """The Consul-discovering configuration, with its rules, passes `promtool check config`."""
        rules = tmp_path / "rules.json"
        rules.write_text(render(prometheus_rules(company_policy)))
        config = tmp_path / "prometheus.json"
        setup = PrometheusSetup(
            "127.0.0.1:8500", "a-token", rule_files=[rules], alertmanagers=["127.0.0.1:9093"]
        )
        config.write_text(render(prometheus_config(setup)))
        result = prometheus_programs.promtool_run("check", "config", config)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_amtool_checks_the_alertmanager_configuration(
        self,
        prometheus_programs: PrometheusPrograms,
        company_policy: PolicyDocument,
        tmp_path: Path,
    ) -> None:
        """The routing to each department's webhook passes Alertmanager's own check."""
        config = tmp_path / "alertmanager.json"
        config.write_text(
            render(
                alertmanager_config(company_policy.departments, "http://127.0.0.1:1/{department}")
            )
        )
        result = prometheus_programs.alertmanager_check(config)
        assert result.returncode == 0, result.stdout + result.stderr
