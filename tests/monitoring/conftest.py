"""The monitoring tests' programs: Prometheus, promtool and Alertmanager, installed once."""

from __future__ import annotations

import pytest

from tests.monitoring.prometheus_programs import PrometheusPrograms, install_prometheus


@pytest.fixture(scope="session")
def prometheus_programs() -> PrometheusPrograms:
    """scripts/install-prometheus's programs (a failed install fails the run)."""
    return install_prometheus()
