"""Error bodies of every shape become the right exception; retry rules."""

from __future__ import annotations

import pickle
import random

import pytest

from reka_nb import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from reka_nb.protocol.errors import (
    MAX_RETRY_AFTER,
    error_from_response,
    is_retryable,
    parse_retry_after,
    retry_delay,
)

ENVELOPE = b'{"error": {"type": "%s", "message": "%s", "param": null, "details": null}}'


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, BadRequestError, False),
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (404, NotFoundError, False),
        (408, ServerError, True),
        (409, ServerError, True),
        (422, BadRequestError, False),
        (429, RateLimitError, True),
        (500, ServerError, True),
        (503, ServerError, True),
        (418, ServerError, False),
    ],
)
def test_status_maps_to_type(status: int, cls: type, retryable: bool) -> None:
    err = error_from_response(status, ENVELOPE % (b"x", b"boom"), request_id="req_9")
    assert type(err) is cls
    assert err.status == status and err.request_id == "req_9"
    assert "req_9" in str(err) and f"HTTP {status}" in str(err)
    assert is_retryable(err) is retryable


def test_fastapi_detail_messages() -> None:
    body = (
        b'{"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"},'
        b' {"loc": ["body", "max_tokens"], "msg": "Input should be > 0", "type": "x"}]}'
    )
    err = error_from_response(422, body, request_id="r")
    assert err.messages == ["messages: Field required", "max_tokens: Input should be > 0"]
    assert str(err) == (
        "Reka rejected the request: messages: Field required; max_tokens: Input should be > 0"
        " (HTTP 422, request id r)"
    )


def test_plain_text_body() -> None:
    err = error_from_response(502, b"Bad gateway\n from proxy", request_id=None)
    assert str(err) == "Server error: Bad gateway from proxy (HTTP 502, request id none)"


def test_unknown_model_lists_available() -> None:
    body = ENVELOPE % (b"not_found_error", b"Model 'reka-x' not found")
    err = error_from_response(
        404, body, request_id="r", model="reka-x", available_models=["reka-core", "reka-flash"]
    )
    assert isinstance(err, NotFoundError)
    assert err.available_models == ["reka-core", "reka-flash"]
    assert str(err).startswith(
        "Unknown model 'reka-x'; the models this key can use: reka-core, reka-flash"
    )


def test_credits_429_is_not_retried() -> None:
    err = error_from_response(
        429, ENVELOPE % (b"rate_limit_error", b"You have run out of credits"), request_id="r"
    )
    assert isinstance(err, RateLimitError) and err.out_of_credits
    assert not is_retryable(err)
    assert str(err).startswith("Out of credits: You have run out of credits")


def test_auth_error_says_what_to_do() -> None:
    err = error_from_response(401, ENVELOPE % (b"authentication_error", b"bad key"), request_id="r")
    assert "check REKA_API_KEY" in str(err)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1000") == MAX_RETRY_AFTER
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 25 Nov 2026 12:00:10 GMT", now=1795608000.0) == 10.0


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    rng = random.Random(1)
    delays = [retry_delay(a, base=0.5, rng=rng) for a in range(5)]
    for attempt, d in enumerate(delays):
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= d <= ceiling
    assert retry_delay(0, 7.0) == 7.0


@pytest.mark.parametrize("header", ["0", "-5", "soon", "nan", "-inf"])
def test_a_retry_after_of_zero_or_below_or_unreadable_waits_the_backoff_floor(header: str) -> None:
    """Each wait is at least half the backoff's ceiling for that attempt, whatever it says."""
    for attempt in range(4):
        wait = retry_delay(attempt, parse_retry_after(header), base=0.5)
        assert 0.25 * 2**attempt <= wait <= 0.5 * 2**attempt, (header, attempt, wait)


def test_which_answers_stop_a_run_or_a_model() -> None:
    from reka_nb.protocol.errors import not_sent, refuses_key, refuses_model, stops_run

    def error(status: int, body: bytes = b"{}") -> Exception:
        return error_from_response(status, body, request_id="req_1", model="reka-x")

    credits = error(429, ENVELOPE % (b"insufficient_credits", b"Insufficient balance"))
    assert [stops_run(error(s)) for s in (401, 403, 404, 429, 500)] == [True] + [False] * 4
    assert stops_run(credits) and not stops_run(ValueError())
    assert [refuses_key(error(s)) for s in (401, 403, 429, 500)] == [True] + [False] * 3
    assert not refuses_key(credits) and not refuses_key(ValueError())
    assert [refuses_model(error(s)) for s in (401, 403, 404, 400, 500)] == [
        False,
        True,
        True,
        False,
        False,
    ]
    unknown = error(404, ENVELOPE % (b"not_found_error", b"model reka-x not found"))
    unsent = not_sent(unknown)
    assert type(unsent) is NotFoundError and unsent is not unknown
    assert (unsent.status, unsent.request_id) == (404, "req_1")
    assert str(unsent) == (
        "Unknown model 'reka-x' (not sent: an earlier request of this run got this answer) "
        "(HTTP 404, request id req_1)"
    )
    assert str(unknown) == "Unknown model 'reka-x' (HTTP 404, request id req_1)"  # unchanged
    assert str(pickle.loads(pickle.dumps(unsent))) == str(unsent)
