"""Finishes approved claims whose payout failed: retries them until finance pays."""

from __future__ import annotations

import threading

import structlog

from deptmesh.services.reimbursement.workflow import ClaimWorkflow

_log = structlog.get_logger("deptmesh.reimbursement")


class PayoutRetrier:
    """A background thread that retries pending payouts every `interval_seconds`."""

    def __init__(self, workflow: ClaimWorkflow, interval_seconds: float) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be positive, got {interval_seconds}")
        self._workflow = workflow
        self._interval = interval_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="payout-retrier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        # wait() doubles as the pause between rounds and the prompt exit on stop.
        while not self._stopping.wait(self._interval):
            try:
                paid = self._workflow.pay_pending()
            except Exception:  # noqa: BLE001 -- one bad round must not end the retrier
                _log.exception("payout_retry_round_failed")
                continue
            if paid:
                _log.info("payouts_retried", paid=paid)
