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
from urllib.parse import urlsplit

from ._exceptions import ConfigurationError, MissingAPIKeyError
from .protocol.messages import Api

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "Api",
    "Settings",
    "model_info_wanted",
    "redact",
    "resolve",
]

DEFAULT_BASE_URL = "https://api.reka.ai/v1"
DEFAULT_MODEL = "reka-flash"
_TRUE = {"1", "true", "yes", "on"}
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Settings:
    """The settings of one request; ``api_key`` never shows in the repr."""

    base_url: str
    model: str
    api_key: str | None
    api: Api
    offline: bool

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
    """True when ``REKA_NB_OFFLINE`` asks for the offline server."""
    return os.environ.get("REKA_NB_OFFLINE", "").strip().lower() in _TRUE


def resolve(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api: str | None = None,
) -> Settings:
    """Resolve settings now: argument > environment > default (or the offline server)."""
    from . import _offline

    if api not in (None, "openai", "native"):
        raise ConfigurationError(f"api must be 'openai' or 'native', not {api!r}")
    chosen_model = os.environ.get("REKA_MODEL") or DEFAULT_MODEL if model is None else model
    offline = base_url is None and (_offline.is_active() or offline_requested())
    key: str | None
    if offline:
        server = _offline.ensure_server()
        url, key = server.base_url, server.api_key
    else:
        url = base_url or os.environ.get("REKA_BASE_URL") or DEFAULT_BASE_URL
        key = _checked_key(api_key or os.environ.get("REKA_API_KEY") or "")
    return Settings(
        base_url=check_base_url(url),
        model=chosen_model,
        api_key=key,
        api=api or "openai",  # type: ignore[arg-type]
        offline=offline,
    )


def _checked_key(key: str) -> str | None:
    """The key without surrounding white space (a key read from a file ends in a newline);
    one an HTTP header cannot carry is refused here, without ever echoing it."""
    key = key.strip()
    if not key:
        return None
    if not _VISIBLE_ASCII.fullmatch(key):
        raise ConfigurationError(
            "the API key contains characters an HTTP header cannot carry (spaces, line breaks "
            "or non-ASCII letters): check REKA_API_KEY or the api_key argument"
        )
    return key


def check_base_url(url: str) -> str:
    """Return the URL without a trailing slash; refuse plain http to anything but loopback."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
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


def redact(text: str, secret: str | None) -> str:
    """Remove a secret from text meant for people (a last line of defence, not the first)."""
    if secret and len(secret) >= 4 and secret in text:
        return text.replace(secret, "[secure]")
    return text
