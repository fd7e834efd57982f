"""Fixtures shared by every tier: logs captured per test, never a fixed port."""
