"""Errors the CLI turns into one line on stderr and exit code 2 (no traceback)."""


class UserError(Exception):
    """Bad input from the user: a bad prompt, a missing prior folder, impossible settings."""
