"""The offline server's account limits over real sockets, and the client's reading of them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image

from reka_nb import RateLimitError, RekaClient
from reka_nb.protocol.errors import error_from_response, parse_reset, rate_limit_pause
from reka_nb.testing import INSUFFICIENT_BALANCE, OfflineServer, image_digest


def png(width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, 8), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def ask(server: OfflineServer, text: str = "Hi") -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json={"model": "reka-flash", "messages": [{"role": "user", "content": text}]},
        timeout=10,
    )


def test_every_answer_carries_the_rate_limit_headers(server: OfflineServer) -> None:
    server.requests_per_minute = 12  # one every 5 s, a bucket of 2
    first, second, third = ask(server), ask(server), ask(server)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-ratelimit-limit"] == "12"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert second.headers["x-ratelimit-remaining"] == "0"
    assert 4.0 < float(second.headers["x-ratelimit-reset"]) <= 5.0
    assert third.status_code == 429
    assert third.headers["retry-after"] == "5"
    assert third.headers["x-ratelimit-remaining"] == "0"
    assert third.json()["error"] == {
        "type": "rate_limit_error",
        "message": "Too many requests",
        "param": None,
        "details": None,
    }
    assert [r.status for r in server.requests] == [200, 200, 429]
    server.requests_per_minute = 12  # a new limit starts with a full bucket
    assert ask(server).status_code == 200


def test_no_limit_no_headers(server: OfflineServer) -> None:
    assert "x-ratelimit-limit" not in ask(server).headers


def test_out_of_credits_is_a_429_that_waiting_does_not_cure(server: OfflineServer) -> None:
    server.credits = 1
    assert ask(server).status_code == 200
    refused = ask(server)
    assert refused.status_code == 429 and "retry-after" not in refused.headers
    assert refused.json()["error"]["message"] == INSUFFICIENT_BALANCE
    client = RekaClient(base_url=server.base_url, api_key=server.api_key)
    with client, pytest.raises(RateLimitError) as caught:
        client.complete([{"role": "user", "content": "Hi"}])
    assert caught.value.out_of_credits
    assert str(caught.value).startswith("Out of credits: Insufficient balance")
    assert len(server.requests) == 3  # not retried


def test_latency_delays_each_answer(server: OfflineServer) -> None:
    server.latency = 0.3
    started = time.monotonic()
    assert ask(server).status_code == 200
    assert time.monotonic() - started >= 0.3
    server.reset()
    assert server.latency == 0.0


def test_requests_are_counted_per_prompt_and_image(server: OfflineServer) -> None:
    server.keep_bodies = False
    with RekaClient(base_url=server.base_url, api_key=server.api_key) as client:
        client.describe(png(10), "Size?", show=False)
        client.describe(png(10), "Size?", show=False)
        client.describe([png(10), png(11)], "Other?", show=False)
    assert server.times_asked(prompt="Size?", image=png(10)) == 2
    assert server.times_asked(image=png(10)) == 3
    assert server.times_asked(image=png(11)) == 1
    assert server.times_asked(prompt="Other?") == 1
    last = server.requests[-1]
    assert last.body is None and last.images == (image_digest(png(10)), image_digest(png(11)))
    assert last.received > 0


def test_the_command_line_server_takes_the_limits() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "reka_nb.testing", "--rpm", "60", "--credits", "5"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        reply = httpx.post(
            url + "/chat/completions",
            headers={"Authorization": "Bearer reka-offline-test-key"},
            json={"model": "reka-flash", "messages": [{"role": "user", "content": "Hi"}]},
            timeout=10,
        )
        proc.terminate()
        assert reply.status_code == 200 and reply.headers["x-ratelimit-limit"] == "60"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1.5", 1.5), ("250ms", 0.25), ("2s", 2.0), ("6m0s", 60.0), ("1m30s", 60.0), ("x", None)],
)
def test_reset_header_forms(value: str, seconds: float | None) -> None:
    assert parse_reset(value) == seconds


def test_reset_as_a_unix_time() -> None:
    assert parse_reset("1000000010", now=1000000000.0) == 10.0


def test_pause_only_when_the_limit_is_used_up() -> None:
    assert rate_limit_pause({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0.4"}) == 0.4
    assert rate_limit_pause({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "0.4"}) is None
    assert rate_limit_pause({}) is None


def test_reka_words_for_no_credit_are_recognised() -> None:
    for body in (
        {"error": {"type": "rate_limit_error", "message": "insufficient balance"}},
        {"error": {"type": "insufficient_balance", "message": "Please top up"}},
        {"detail": "Insufficient Balance"},
    ):
        error = error_from_response(429, json.dumps(body), request_id="r")
        assert isinstance(error, RateLimitError) and error.out_of_credits, body
    busy = error_from_response(429, "Too many requests", request_id="r", reset="0.5")
    assert not busy.out_of_credits and busy.retry_after == 0.5
