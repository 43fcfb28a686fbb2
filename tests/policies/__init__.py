"""Tests of the CrossGuard policy pack (policies/)."""
