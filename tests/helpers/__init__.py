"""Test helpers (not tests): reference implementations, a small real runner, project fixtures, paths."""
