"""Test suites; a package so tests.infra.harness is importable by name from any suite."""
