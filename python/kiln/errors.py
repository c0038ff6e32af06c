"""Typed errors: each carries the server's text (the problem document's
``detail``, the same line the CLI prints) and the HTTP status."""


class KilnError(Exception):
    """Anything that went wrong talking to Kiln.

    ``detail`` is the server's text (or the client's, when the server was
    never reached), ``status`` the HTTP status (``None`` when there was no
    answer) and ``problem`` the whole problem document, when there was one.
    """

    def __init__(self, detail, status=None, problem=None):
        super(KilnError, self).__init__(detail)
        self.detail = detail
        self.status = status
        self.problem = problem or {}

    def __str__(self):
        return self.detail


class InvalidRequest(KilnError):
    """400: a parameter or field is wrong; ``detail`` starts with its name."""


class Unauthenticated(KilnError):
    """401: no token, or one the server does not accept."""


class Forbidden(KilnError):
    """403: the caller may not; ``detail`` says whom to ask."""


class NotFound(KilnError):
    """404: no such job, frame, host or route."""


class Unavailable(KilnError):
    """503, or no answer at all: the server is away, shutting down or its
    store fails. A submission may or may not have been made: retry it with
    the same idempotency key."""


class Unreachable(Unavailable):
    """The server could not be reached (refused, reset, timed out)."""


class Untrusted(KilnError):
    """The server's TLS certificate is not one this client trusts."""


class ConfigurationError(KilnError):
    """The client's settings are wrong (a server address, a CA file)."""


_BY_STATUS = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    503: Unavailable,
}


def from_status(status, detail, problem=None):
    """The error for an HTTP answer with ``status``."""
    return _BY_STATUS.get(status, KilnError)(detail, status, problem)


class WaitTimeout(KilnError):
    """``job.wait(timeout=...)`` ran out of time; the job goes on."""
