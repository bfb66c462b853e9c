"""Settings resolved late: explicit argument, else the environment at call time, else a default.

Read at call time, not import time, because notebook users set ``REKA_API_KEY`` after
``import reka_nb``. When offline mode is on (``use_offline_server()`` or ``REKA_NB_OFFLINE=1``),
clients without an explicit ``base_url`` talk to the in-process offline server with its key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

import httpx

from .._exceptions import ConfigurationError, MissingAPIKeyError
from ..protocol.errors import redact
from ..protocol.messages import Api

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_IMAGES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MODEL",
    "Api",
    "Secret",
    "Settings",
    "model_info_wanted",
    "positive",
    "redact",
    "resolve",
]

DEFAULT_BASE_URL = "https://api.reka.ai/v1"
DEFAULT_MODEL = "reka-flash"
DEFAULT_MAX_IMAGES = 6
"""Images one message may carry unless set otherwise (Reka's own limit is unconfirmed; the
offline server takes 6 and ``reka-edge-2603`` 3)."""
DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024
"""Bytes of encoded images (base64, as sent) one request may carry unless set otherwise."""
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


class Secret:
    """An API key that shows as ``[secure]`` in every repr and str, so no traceback with
    local variables (``%xmode Verbose``, ``capture_locals=True``, a debugger) shows it, and
    that refuses to be pickled. ``reveal()`` gives the key to the one place that sends it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('[secure]')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        _refuse_pickle()


def _refuse_pickle() -> NoReturn:
    raise TypeError(
        "an API key is never pickled: give each process its key through REKA_API_KEY "
        "(or the api_key argument there), not inside a pickled object"
    )


@dataclass(frozen=True)
class Settings:
    """The settings of one request; ``api_key`` never shows in the repr, nor in a pickle
    (pickling is refused)."""

    base_url: str
    model: str
    api_key: str | None
    api: Api
    offline: bool
    max_images: int = DEFAULT_MAX_IMAGES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

    def __reduce__(self) -> NoReturn:
        _refuse_pickle()

    def __repr__(self) -> str:
        key = "[secure]" if self.api_key else None
        return (
            f"Settings(base_url={self.base_url!r}, model={self.model!r}, api={self.api!r}, "
            f"api_key={key!r}, offline={self.offline})"
        )

    def require_key(self) -> str:
        """The key, or MissingAPIKeyError saying how to set one."""
        if not self.api_key:
            raise MissingAPIKeyError()
        return self.api_key


def model_info_wanted() -> bool:
    """False when ``REKA_NB_MODEL_INFO`` is ``off`` (or 0/false/no): then a client never asks
    ``GET /models`` by itself, and knows only the lists it was asked for."""
    value = os.environ.get("REKA_NB_MODEL_INFO", "").strip().lower()
    if value in ("", "on", "auto", *_TRUE):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise ConfigurationError(f"REKA_NB_MODEL_INFO must be 'on' or 'off', not {value!r}")


def offline_requested() -> bool:
    """True when ``REKA_NB_OFFLINE`` asks for the offline server: 1, true, yes or on; 0,
    false, no, off or empty is off, and anything else is an error (a typo must not quietly
    send requests to Reka)."""
    value = os.environ.get("REKA_NB_OFFLINE", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"REKA_NB_OFFLINE must be 1, true, yes or on (offline) or 0, false, no, off or empty "
        f"(online), not {os.environ['REKA_NB_OFFLINE'].strip()!r}"
    )


def resolve(
    *,
    api_key: str | Secret | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api: str | None = None,
    max_images: int | None = None,
    max_request_bytes: int | None = None,
) -> Settings:
    """Resolve settings now: argument > environment > default (or the offline server).

    The key is read last and held only as a ``Secret`` here, so no frame of a traceback
    raised while resolving shows it.
    """
    from . import offline_mode as _offline

    if api not in (None, "openai", "native"):
        raise ConfigurationError(f"api must be 'openai' or 'native', not {api!r}")
    chosen_model = os.environ.get("REKA_MODEL") or DEFAULT_MODEL if model is None else model
    images = _limit("max_images", max_images, "REKA_NB_MAX_IMAGES", DEFAULT_MAX_IMAGES)
    size = _limit(
        "max_request_bytes",
        max_request_bytes,
        "REKA_NB_MAX_REQUEST_BYTES",
        DEFAULT_MAX_REQUEST_BYTES,
    )
    offline = base_url is None and (_offline.is_active() or offline_requested())
    secret: Secret | None
    if offline:
        server = _offline.ensure_server()
        url, secret = check_base_url(server.base_url), Secret(server.api_key)
    else:
        url = check_base_url(base_url or os.environ.get("REKA_BASE_URL") or DEFAULT_BASE_URL)
        if not isinstance(api_key, Secret):
            api_key = Secret(api_key or os.environ.get("REKA_API_KEY") or "")
        secret = _checked_key(api_key)
    return Settings(
        base_url=url,
        model=chosen_model,
        api_key=secret.reveal() if secret else None,
        api=api or "openai",  # type: ignore[arg-type]
        offline=offline,
        max_images=images,
        max_request_bytes=size,
    )


def _limit(name: str, value: int | None, variable: str, default: int) -> int:
    """A positive whole number: the argument, else the environment variable, else default."""
    if value is None:
        text = os.environ.get(variable, "").strip()
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigurationError(
                f"{variable} must be a whole number above 0, not {text!r}"
            ) from None
        name = variable
    return positive(name, value)


def positive(name: str, value: object) -> int:
    """``value`` when it is a whole number above 0, else ConfigurationError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a whole number above 0, not {value!r}")
    return value


def _checked_key(key: Secret) -> Secret | None:
    """The key without surrounding white space (a key read from a file ends in a newline);
    one an HTTP header cannot carry is refused here, without ever echoing it (no local
    variable holds it as a str)."""
    key = Secret(key.reveal().strip())
    if not key:
        return None
    if not _VISIBLE_ASCII.fullmatch(key.reveal()):
        raise ConfigurationError(
            "the API key contains characters an HTTP header cannot carry (spaces, line breaks "
            "or non-ASCII letters): check REKA_API_KEY or the api_key argument"
        )
    return key


def check_base_url(url: str) -> str:
    """Return the URL without a trailing slash; refuse plain http to anything but loopback."""
    url = url.strip().rstrip("/")
    problem = ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
        httpx.URL(url)  # what the transport will parse: refuse now what it would refuse then
    except (ValueError, httpx.InvalidURL) as exc:
        problem = str(exc)
    if problem:  # raised outside the except: no half-built httpx.URL in the error's context
        raise ConfigurationError(
            f"base URL {url!r} is not a valid URL ({problem}), e.g. {DEFAULT_BASE_URL}"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base URL {url!r} is not an http(s) URL with a host, e.g. {DEFAULT_BASE_URL}"
        )
    if parts.username or parts.password:
        raise ConfigurationError("the base URL must not carry a user name or password")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain http to {parts.hostname}: the API key would travel unencrypted. "
            "Use https, or a loopback host (127.0.0.1, localhost, ::1) for local servers."
        )
    return url


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
