"""One exception type for every user-facing error.

A :class:`SarstackError` message is a single line that names the offending file
or config key; the script entry points turn it into ``error: <message>`` on
stderr and exit status 2, without a traceback.
"""


class SarstackError(ValueError):
    """A user-facing error: bad input file, bad config value, unusable stack, or
    a bad argument to a kernel (a ``ValueError``, so callers that catch those
    keep working)."""
