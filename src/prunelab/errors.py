"""Errors that reach the user as one clear line instead of a traceback."""


class PrunelabError(Exception):
    """A problem the user can fix (bad input, missing data, diverged training)."""


class UsageError(PrunelabError):
    """A malformed command line (exit status 2, as argparse's); other errors exit with 1."""
