"""The usage spool: durable across reopening, bounded with a counted loss, acknowledged
batches gone, refused ones set aside."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from deptmesh.metering.v1 import metering_pb2
from deptmesh.sidecar.metering.spool import UsageSpool


def batch(name: str, records: int) -> metering_pb2.ReportUsageRequest:
    return metering_pb2.ReportUsageRequest(
        records=[metering_pb2.UsageRecord(record_id=f"{name}/{n}", calls=1) for n in range(records)]
    )


def ids(spool: UsageSpool) -> list[str]:
    """The record ids waiting, oldest batch first (deleting as it reads)."""
    seen = []
    while (oldest := spool.oldest()) is not None:
        seen += [record.record_id for record in oldest.request.records]
        spool.delete(oldest.seq)
    return seen


class TestUsageSpool:
    def test_batches_survive_closing_and_reopening(self, tmp_path):
        """What was appended is there, in order, for the next process that opens the file."""
        spool = UsageSpool(tmp_path / "spool.sqlite")
        spool.append(batch("a", 2))
        spool.append(batch("b", 1))
        spool.close()

        again = UsageSpool(tmp_path / "spool.sqlite")
        assert again.waiting_records() == 3
        assert ids(again) == ["a/0", "a/1", "b/0"]

    def test_an_acknowledged_batch_is_deleted(self, tmp_path):
        """delete forgets that batch only, for good."""
        spool = UsageSpool(tmp_path / "spool.sqlite")
        spool.append(batch("a", 1))
        spool.append(batch("b", 1))
        oldest = spool.oldest()
        assert oldest is not None
        spool.delete(oldest.seq)
        spool.close()
        assert ids(UsageSpool(tmp_path / "spool.sqlite")) == ["b/0"]

    def test_the_file_is_in_wal_mode(self, tmp_path):
        """The spool writes ahead (WAL), so a reader never blocks the shipper."""
        spool = UsageSpool(tmp_path / "spool.sqlite")
        spool.append(batch("a", 1))
        assert (tmp_path / "spool.sqlite-wal").exists()

    def test_when_full_the_oldest_batches_are_dropped_and_counted(self, tmp_path):
        """Past max_records the oldest batches go, whole; their records are counted and logged."""
        spool = UsageSpool(tmp_path / "spool.sqlite", max_records=5)
        spool.append(batch("a", 2))
        spool.append(batch("b", 2))
        with capture_logs() as logs:
            spool.append(batch("c", 3))
        assert spool.waiting_records() == 5
        assert spool.lost_records == 2
        assert [log["event"] for log in logs] == ["usage_spool_full"]
        assert logs[0]["dropped_records"] == 2
        spool.close()

        again = UsageSpool(tmp_path / "spool.sqlite", max_records=5)
        assert again.lost_records == 2  # the count is kept in the file
        assert ids(again) == ["b/0", "b/1", "c/0", "c/1", "c/2"]

    def test_a_refused_batch_is_set_aside_with_its_reason(self, tmp_path):
        """set_aside takes the batch out of the queue and keeps it with the reason."""
        spool = UsageSpool(tmp_path / "spool.sqlite")
        spool.append(batch("bad", 1))
        spool.append(batch("good", 1))
        oldest = spool.oldest()
        assert oldest is not None
        spool.set_aside(oldest.seq, "INVALID_ARGUMENT: records[0].caller is empty")

        assert ids(spool) == ["good/0"]
        (aside,) = spool.set_aside_batches()
        assert aside.reason == "INVALID_ARGUMENT: records[0].caller is empty"
        assert [record.record_id for record in aside.request.records] == ["bad/0"]
        assert spool.lost_records == 0

    def test_two_processes_may_share_a_spool(self, tmp_path):
        """Two spools on one file see each other's batches (replicas sharing one --db)."""
        first = UsageSpool(tmp_path / "spool.sqlite")
        second = UsageSpool(tmp_path / "spool.sqlite")
        first.append(batch("a", 1))
        second.append(batch("b", 1))
        assert ids(first) == ["a/0", "b/0"]
        assert second.oldest() is None

    def test_an_empty_batch_is_not_kept(self, tmp_path):
        """Appending no records adds nothing."""
        spool = UsageSpool(tmp_path / "spool.sqlite")
        spool.append(metering_pb2.ReportUsageRequest())
        assert spool.oldest() is None

    def test_max_records_must_be_positive(self, tmp_path):
        """A bound below one record is refused."""
        with pytest.raises(ValueError, match="max_records"):
            UsageSpool(tmp_path / "spool.sqlite", max_records=0)
