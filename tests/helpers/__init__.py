"""Shared pieces of the tests: stub servers, run fixtures, TUI fakes (no tests here)."""
