"""Every error reka_nb raises, in one hierarchy.

    RekaError
    ├── ConfigurationError          bad settings (e.g. plain http to a remote host)
    │   └── MissingAPIKeyError      no key in the argument or REKA_API_KEY
    ├── ImageError                  an input that cannot be sent as an image (also a ValueError)
    │   └── VideoError              a video that cannot be sent (unknown container, too big)
    ├── InvalidRequestError         a prompt, message or parameter we would not send (a ValueError)
    ├── APIError                    the server answered with an error status
    │   ├── BadRequestError         400 / 422: the request was invalid
    │   ├── AuthenticationError     401 / 403: the key is missing, wrong or not allowed
    │   ├── NotFoundError           404: unknown model or endpoint
    │   ├── RateLimitError          429: too many requests, or out of credits
    │   └── ServerError             5xx and any other unexpected status
    ├── APIConnectionError          could not reach the server, or it hung up before answering
    │   └── ClientClosedError       the client was closed before this call
    ├── APITimeoutError             connecting, or waiting between two events, took too long
    ├── StreamInterrupted           the answer broke off part way; keeps ``partial_text``
    └── SchemaError                 a structured answer is not JSON valid for its schema;
                                    keeps ``raw_text``

    LongVideoWarning                a warning (UserWarning): a clip longer than Reka answers best
    CacheWarning (a UserWarning)    the answer cache cannot be used; the run goes on without it

A run over many images that stops early (out of credits, or interrupted with Ctrl-C) raises
the usual exception with the finished answers attached as ``exc.results``.

No message ever contains the API key: what the server said is redacted (the key and any
part of it of 8 characters or more) before it becomes a message. Every error pickles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CacheWarning",
    "ClientClosedError",
    "ConfigurationError",
    "ImageError",
    "InvalidRequestError",
    "LongVideoWarning",
    "MissingAPIKeyError",
    "ModelInfoWarning",
    "NotFoundError",
    "RateLimitError",
    "RekaError",
    "SchemaError",
    "ServerError",
    "StreamInterrupted",
    "VideoError",
]


class RekaError(Exception):
    """Base class of every reka_nb error.

    These are expected errors (a bad input, a missing key, an API error), so IPython and
    Jupyter show them as one line, type and message (with status and request id for an
    API error), instead of a traceback through reka_nb's code: ``_render_traceback_`` is
    IPython's hook for that. Other exceptions keep their full traceback. Errors pickle (to
    cross process boundaries, as in a batch on worker processes) with their message and
    attributes, whatever their constructor's signature.
    """

    def _render_traceback_(self) -> list[str]:
        message = str(self)
        return [f"{type(self).__name__}: {message}" if message else type(self).__name__]

    def __reduce__(self) -> tuple:
        return _restore, (type(self), self.args, dict(vars(self)))


def _restore(cls: type[RekaError], args: tuple, state: dict) -> RekaError:
    error = cls.__new__(cls)
    error.args = args
    vars(error).update(state)
    return error


def one_line(exc: BaseException, message: str) -> BaseException:
    """``exc`` (a ``KeyboardInterrupt``: a stop) shown as ``Type: message`` in IPython and
    Jupyter, as a ``RekaError`` is, instead of a traceback through reka_nb, httpx and httpcore;
    the cell still fails. ``message`` also becomes its ``str()``, which a script's traceback
    ends with. Returns ``exc``."""
    exc.args = (message,)
    line = f"{type(exc).__name__}: {message}"
    exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    return exc


class ConfigurationError(RekaError):
    """Raised when settings are unusable, before anything is sent."""


class MissingAPIKeyError(ConfigurationError):
    """Raised when no API key is given and ``REKA_API_KEY`` is not set."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "No Reka API key: set the REKA_API_KEY environment variable "
            "(keys are made at https://platform.reka.ai), or pass api_key=... to the client. "
            "To try reka_nb without a key, use the offline server: reka_nb.use_offline_server(), "
            "REKA_NB_OFFLINE=1, or --offline on the command line."
        )


class ImageError(RekaError, ValueError):
    """Raised when an input cannot be turned into an image to send; nothing is sent."""


class VideoError(ImageError):
    """Raised when a video cannot be sent (not MP4/MOV/WebM, damaged, over the byte limit)."""


class LongVideoWarning(UserWarning):
    """Warned when a clip lasts longer than Reka's chat models answer best (30 s)."""


class InvalidRequestError(RekaError, ValueError):
    """Raised for a bad prompt, message or parameter, before anything is sent."""


class APIError(RekaError):
    """Raised when the server answers with an error status.

    ``status`` is the HTTP status, ``request_id`` the server's ``X-Request-ID``,
    ``error_type`` the ``error.type`` of the body when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        request_id: str | None = None,
        error_type: str | None = None,
        messages: Sequence[str] = (),
    ) -> None:
        self.message = message
        self.status = status
        self.request_id = request_id
        self.error_type = error_type
        self.messages = list(messages) or [message]
        super().__init__(self._text())

    def _text(self) -> str:
        rid = self.request_id or "none"
        return f"{self.message} (HTTP {self.status}, request id {rid})"


class BadRequestError(APIError):
    """Raised on 400 and 422: the server rejected the request; ``messages`` lists why."""


class AuthenticationError(APIError):
    """Raised on 401 and 403: the key is missing, wrong, or not allowed here."""


class NotFoundError(APIError):
    """Raised on 404; for an unknown model, ``available_models`` lists the ones the key can use."""

    available_models: list[str]

    def __init__(self, message: str, *, available_models: Sequence[str] = (), **kw) -> None:
        self.available_models = list(available_models)
        super().__init__(message, **kw)


class RateLimitError(APIError):
    """Raised on 429 once retries are spent, or at once when the account is out of credits."""

    retry_after: float | None
    out_of_credits: bool

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        out_of_credits: bool = False,
        **kw,
    ) -> None:
        self.retry_after = retry_after
        self.out_of_credits = out_of_credits
        super().__init__(message, **kw)


class ServerError(APIError):
    """Raised on 5xx (after retries) and on any other unexpected status."""


class APIConnectionError(RekaError):
    """Raised when the server cannot be reached or closes the connection before answering."""


class ClientClosedError(APIConnectionError):
    """Raised by a call on a client after its ``close()``/``aclose()``, in every thread."""


class APITimeoutError(RekaError):
    """Raised when connecting, or waiting for the next event of an answer, takes too long."""


class StreamInterrupted(RekaError):
    """Raised when an answer stops part way; ``partial_text`` holds what had arrived.

    ``request_id`` is the server's ``X-Request-ID``; ``reason`` says why it stopped
    (connection lost, timeout, malformed event, stream ended without a finish, interrupted).
    """

    def __init__(
        self,
        reason: str,
        *,
        partial_text: str = "",
        request_id: str | None = None,
        status: int | None = 200,
    ) -> None:
        self.reason = reason
        self.partial_text = partial_text
        self.request_id = request_id
        self.status = status
        n = len(partial_text)
        rid = request_id or "none"
        super().__init__(f"The answer stopped after {n} characters: {reason} (request id {rid})")


class SchemaError(RekaError):
    """Raised when a structured answer is not JSON valid for its schema (after any repair).

    ``raw_text`` keeps what the model wrote; ``problems`` lists what was wrong, one line
    each; ``reason`` is ``"empty"``, ``"no_json"``, ``"invalid_json"`` or ``"invalid"``.
    A question's last failure also says what its attempts spent: ``usage`` (tokens, every
    attempt's) and ``cost`` (US dollars, when the model's prices are known); else None.
    """

    usage: Any = None
    cost: Any = None

    def __init__(
        self,
        message: str,
        *,
        raw_text: str = "",
        problems: Sequence[str] = (),
        reason: str = "invalid",
    ) -> None:
        self.raw_text = raw_text
        self.problems = list(problems)
        self.reason = reason
        super().__init__(message)


class CacheWarning(UserWarning):
    """Warned when the answer cache is corrupt or locked; the run goes on without it."""


class CacheLocked(Exception):
    """Internal: the answer cache would have to wait for another connection's lock, and the
    caller asked it not to (the event loop's thread); the caller then waits in a worker."""


class ModelInfoWarning(UserWarning):
    """Warned when the server's model list states something unusable (a price that is not a
    number of US dollars per token from 0 to 1): that field is left out, the rest is kept."""
