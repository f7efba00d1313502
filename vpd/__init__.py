"""The `vpd` command: the front end over vpd_core (and, later, sandboxes and flows)."""
