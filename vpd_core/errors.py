"""Errors for bad input. Front ends catch `VPDError` and report its message (exit status 2)."""


class VPDError(ValueError):
    """Bad input: a params file, a model directory, a data record. The message names what is wrong."""
