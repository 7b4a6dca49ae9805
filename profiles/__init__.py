"""Measurement: probe suites, graders, the runner, statistics, reports, shipped data."""
