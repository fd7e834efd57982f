"""Deadlines: every outbound call has one, and an inbound call's remainder caps it."""

from deptmesh.sidecar.deadline.budget import outbound_timeout, remaining_seconds
from deptmesh.sidecar.deadline.stage import DeadlineStage

__all__ = ["DeadlineStage", "outbound_timeout", "remaining_seconds"]
