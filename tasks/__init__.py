"""Prefect tasks: thin wrappers over vpd_core and sandboxes (no logic of their own)."""
