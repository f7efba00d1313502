"""Prefect flows: prepare, train, evaluate, report, pipeline, sweep."""
