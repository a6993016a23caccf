"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input from the user (unknown name, impossible budget, malformed data). Printed as `error: <msg>`."""
