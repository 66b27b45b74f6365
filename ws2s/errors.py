"""One exception type for every user-facing failure: the CLI prints its message alone."""


class Ws2sError(Exception):
    """A problem with the user's config, data or files, stated in one line."""
