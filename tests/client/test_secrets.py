"""The API key never reaches a repr, an exception, a log line or an output.

Each scenario runs with a distinctive key; everything it produced (stdout, stderr, every log
record at DEBUG from every logger, exception texts and reprs and their attributes, object
reprs, the CLI's output) is searched for the key.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _env import child_environment

from reka_nb import AsyncRekaClient, RekaClient, RekaError, describe
from reka_nb.client.settings import resolve
from reka_nb.testing import Fault, OfflineServer

SECRET = "reka-SECRET-9f8e7d6c5b4a"
WRONG = "reka-WRONG-1a2b3c4d5e6f"
CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"


@pytest.fixture(scope="module")
def secret_server() -> Iterator[OfflineServer]:
    with OfflineServer(api_key=SECRET) as server:
        yield server


@pytest.fixture
def produced(
    secret_server: OfflineServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[list[str]]:
    """Collects everything produced; after the test, asserts no key is in any of it."""
    secret_server.reset()
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    yield texts
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    records = caplog.get_records("call")
    texts += [r.getMessage() for r in records]
    texts += [repr(r.__dict__) for r in records]
    texts += [repr(r) for r in secret_server.requests]
    assert records, "nothing was logged: the log search would prove nothing"
    for text in texts:
        assert SECRET.lower() not in text.lower()  # nor lowercased, as a header name or type may be
        assert WRONG.lower() not in text.lower()


def collect_error(texts: list[str], error: BaseException) -> None:
    texts += [str(error), repr(error), repr(vars(error)), repr(error.args)]
    if error.__cause__ is not None:
        texts += [str(error.__cause__), repr(error.__cause__)]


def test_success_paths(secret_server: OfflineServer, produced: list[str]) -> None:
    for api in ("openai", "native"):
        with RekaClient(base_url=secret_server.base_url, api_key=SECRET, api=api) as client:
            produced.append(repr(client))
            produced.append(repr(client.settings()))
            result = describe(CAT, client=client)
            produced += [repr(result), result._repr_markdown_(), result.footer()]
            produced.append(repr(client.models()))


def test_async_client(secret_server: OfflineServer, produced: list[str]) -> None:
    async def main() -> None:
        async with AsyncRekaClient(base_url=secret_server.base_url, api_key=SECRET) as client:
            produced.append(repr(client))
            produced.append(await client.describe(CAT))

    asyncio.run(main())


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(500),
        Fault.status(429, retry_after=0),
        Fault.break_after(3),
        Fault.malformed(2),
        Fault.end_without_finish(2),
        Fault.reset(),
    ],
)
def test_error_paths(secret_server: OfflineServer, produced: list[str], fault: Fault) -> None:
    secret_server.queue(*[fault] * 3)
    client = RekaClient(base_url=secret_server.base_url, api_key=SECRET, backoff=0.01)
    with client, pytest.raises(RekaError) as info:
        describe(CAT, client=client)
    collect_error(produced, info.value)


def test_wrong_key_and_unknown_model(secret_server: OfflineServer, produced: list[str]) -> None:
    with RekaClient(base_url=secret_server.base_url, api_key=WRONG) as client:
        with pytest.raises(RekaError) as info:
            describe(CAT, client=client)
        collect_error(produced, info.value)
    with RekaClient(base_url=secret_server.base_url, api_key=SECRET) as client:
        with pytest.raises(RekaError) as info:
            describe(CAT, client=client, model="reka-unknown")
        collect_error(produced, info.value)


def test_settings_from_environment(
    secret_server: OfflineServer, produced: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_API_KEY", SECRET)
    monkeypatch.setenv("REKA_BASE_URL", secret_server.base_url)
    produced.append(repr(resolve()))
    produced.append(repr(RekaClient()))
    describe(CAT, show=False)


@pytest.mark.parametrize("key", [SECRET, WRONG])
def test_cli_output(secret_server: OfflineServer, produced: list[str], key: str) -> None:
    env = child_environment()
    env.update(REKA_API_KEY=key, REKA_BASE_URL=secret_server.base_url)
    for args in (["describe", str(CAT)], ["describe", str(CAT), "--json"], ["models"]):
        proc = subprocess.run(
            [sys.executable, "-m", "reka_nb", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        produced += [proc.stdout, proc.stderr]
    logging.getLogger("reka_nb.test").debug("cli ran")  # keeps the 'something logged' check honest


def _reprs_of_chain(error: BaseException) -> list[str]:
    """Every repr reachable from an error's cause and context, request headers included."""
    out = []
    seen: BaseException | None = error
    while seen is not None:
        out += [repr(seen), repr(vars(seen))]
        request = getattr(seen, "_request", None)
        if request is not None:
            out.append(repr(request.headers))
        seen = seen.__cause__ or seen.__context__
    return out


@pytest.mark.parametrize("api", ["openai", "native"])
@pytest.mark.parametrize("fault", [Fault.reset(), Fault.break_after(2), Fault.stall(1, 3.0)])
def test_error_chains_hold_no_key(
    secret_server: OfflineServer, produced: list[str], api: str, fault: Fault
) -> None:
    secret_server.queue(*[fault] * 3)
    client = RekaClient(
        base_url=secret_server.base_url, api_key=SECRET, api=api, backoff=0.01, read_timeout=0.3
    )
    with client, pytest.raises(RekaError) as info:
        describe(CAT, client=client, show=False)
    produced += _reprs_of_chain(info.value)


def test_key_read_from_a_file_keeps_working(
    secret_server: OfflineServer, produced: list[str]
) -> None:
    with RekaClient(base_url=secret_server.base_url, api_key=SECRET + "\n") as client:
        produced.append(describe(CAT, client=client, show=False))


@pytest.mark.parametrize("bad", [SECRET + "é", SECRET[:8] + " " + SECRET[8:], SECRET + "\n2"])
def test_key_a_header_cannot_carry_is_refused_unechoed(
    secret_server: OfflineServer, produced: list[str], bad: str
) -> None:
    from reka_nb import ConfigurationError

    client = RekaClient(base_url=secret_server.base_url, api_key=bad)
    with client, pytest.raises(ConfigurationError, match="characters an HTTP header cannot"):
        describe(CAT, client=client, show=False)
    assert secret_server.requests == []
    logging.getLogger("reka_nb.test").debug("refused")


# -- tracebacks with local variables, saved notebooks, pickles, echoed keys -----------------


def _verbose_traceback(error: BaseException) -> str:
    """What %xmode Verbose, a debugger or an error reporter shows: every frame's locals."""
    import traceback

    return "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())


@pytest.mark.parametrize("api", ["openai", "native"])
@pytest.mark.parametrize(
    "fault",
    [Fault.status(500), Fault.status(404), Fault.break_after(2), Fault.malformed(1), Fault.reset()],
)
def test_tracebacks_with_locals_hold_no_key(
    secret_server: OfflineServer, produced: list[str], api: str, fault: Fault
) -> None:
    secret_server.queue(*[fault] * 3)
    client = RekaClient(
        base_url=secret_server.base_url, api_key=SECRET, api=api, backoff=0.01, max_retries=1
    )
    with client, pytest.raises(RekaError) as info:
        describe(CAT, client=client, show=False)
    text = _verbose_traceback(info.value)
    assert "client = RekaClient(" in text  # the locals of the frames are there
    produced.append(text)


def test_tracebacks_of_settings_errors_hold_no_key(
    produced: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reka_nb import ConfigurationError

    monkeypatch.setenv("REKA_API_KEY", SECRET + " x")  # a key a header cannot carry
    with pytest.raises(ConfigurationError) as info:
        RekaClient(base_url="http://127.0.0.1:9/v1").settings()
    produced.append(_verbose_traceback(info.value))
    monkeypatch.setenv("REKA_API_KEY", SECRET)
    monkeypatch.setenv("REKA_BASE_URL", "http://[::1]evil.com")
    with pytest.raises(ConfigurationError, match="is not a valid URL") as info:
        describe(CAT, show=False)
    produced.append(_verbose_traceback(info.value))
    logging.getLogger("reka_nb.test").debug("settings errors")


def test_notebook_saved_after_errors_under_xmode_verbose(secret_server: OfflineServer) -> None:
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "%xmode Verbose",
        f"import reka_nb\nreka_nb.describe({str(CAT)!r}, model='reka-unknown')",
        "client = reka_nb.RekaClient(api='native', read_timeout=0.5, max_retries=0)\n"
        f"client.describe({str(CAT)!r})",
        # an unexpected error inside the transport keeps its full Verbose traceback, locals too
        "import httpx\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('unexpected')\n"
        "httpx.Client.send = broken\n"
        f"reka_nb.describe({str(CAT)!r})",
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    for cell in notebook.cells[1:]:
        cell.metadata["tags"] = ["raises-exception"]
    secret_server.reset()
    secret_server.queue(Fault.ok(), Fault.ok(), Fault.stall(1, 3.0))  # 404, models, timeout
    env = child_environment()
    env.update(REKA_API_KEY=SECRET, REKA_BASE_URL=secret_server.base_url)
    env.update(REKA_NB_MODEL_INFO="off")  # one question, one request: the faults line up
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute(env=env)
    saved = nbformat.writes(notebook)
    errors = [o for c in notebook.cells for o in c.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["NotFoundError", "StreamInterrupted", "RuntimeError"]
    assert "User-Agent" in saved  # Verbose showed _send's locals: its headers hold no key
    assert SECRET not in saved


def test_errors_pickle_and_keys_do_not(secret_server: OfflineServer, produced: list[str]) -> None:
    import pickle

    from reka_nb import APIError, StreamInterrupted
    from reka_nb.client.settings import Secret

    secret_server.queue(Fault.status(429, retry_after=0), *[Fault.status(404)] * 2)
    errors: list[RekaError] = []
    with RekaClient(base_url=secret_server.base_url, api_key=SECRET, max_retries=0) as client:
        for _ in range(2):
            with pytest.raises(APIError) as info:
                client.complete([{"role": "user", "content": "hi"}])
            errors.append(info.value)
        secret_server.queue(Fault.break_after(2))
        with pytest.raises(StreamInterrupted) as broken:
            "".join(client.stream([{"role": "user", "content": "hi"}]))
        errors.append(broken.value)
        for error in errors:
            data = pickle.dumps(error)
            produced.append(repr(data))
            again = pickle.loads(data)
            assert type(again) is type(error) and str(again) == str(error)
            assert vars(again) == vars(error)
        with pytest.raises(TypeError, match="an API key is never pickled"):
            pickle.dumps(client.settings())
        with pytest.raises(TypeError, match="is not pickled"):
            pickle.dumps(client)
    with pytest.raises(TypeError, match="an API key is never pickled"):
        pickle.dumps(Secret(SECRET))
    assert repr(Secret(SECRET)) == str(Secret(SECRET)) == "Secret('[secure]')"


@pytest.mark.parametrize("echo", [SECRET, SECRET[:12], SECRET[-9:]])
def test_a_key_echoed_by_the_server_is_redacted(
    secret_server: OfflineServer, produced: list[str], echo: str
) -> None:
    body = {"error": {"type": "authentication_error", "message": f"Incorrect API key: {echo}"}}
    secret_server.queue(Fault.status(401, body), Fault.status(400, f"bad key {echo}!"))
    with RekaClient(base_url=secret_server.base_url, api_key=SECRET) as client:
        for _ in range(2):
            with pytest.raises(RekaError) as info:
                describe(CAT, client=client, show=False)
            collect_error(produced, info.value)
            assert "[secure]" in str(info.value)
            for start in range(len(SECRET) - 7):  # no 8 characters in a row of the key
                assert SECRET[start : start + 8] not in str(info.value)
    env = child_environment()
    env.update(REKA_API_KEY=SECRET, REKA_BASE_URL=secret_server.base_url)
    secret_server.queue(Fault.status(401, body))
    proc = subprocess.run(
        [sys.executable, "-m", "reka_nb", "describe", str(CAT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "Incorrect API key: [secure]" in proc.stderr
    produced += [proc.stdout, proc.stderr]


def _stored(folder: Path) -> list[str]:
    """Every file under a folder (the answer cache's SQLite files), as text."""
    return [p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file()]


ECHOES = ["X-Request-ID", "Content-Type", "Content-Encoding", "X-Reka-Debug"]


@pytest.mark.parametrize("api", ["openai", "native"])
@pytest.mark.parametrize("header", ECHOES)
def test_a_key_echoed_in_a_header_is_redacted_everywhere(
    secret_server: OfflineServer,
    produced: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
    header: str,
) -> None:
    """A server that puts the key into a response header (its request id, its content type or
    encoding, a header of its own): the key reaches no message, record, table, pickle, cache
    file or CLI line, and what is shown says ``[secure]`` where the key was."""
    import pickle

    from reka_nb import describe_many

    cache = tmp_path / "cache"
    monkeypatch.setenv("REKA_NB_CACHE", str(cache))
    secret_server.queue(*[Fault.echo_key(header)] * 3, *[Fault.echo_key(header, code=400)] * 2)
    from PIL import Image

    images = []
    for i in range(5):  # five different images: five questions, none a cache hit of another
        images.append(tmp_path / f"img{i}.png")
        Image.new("RGB", (8 + i, 8)).save(images[-1])
    with RekaClient(
        base_url=secret_server.base_url, api_key=SECRET, api=api, max_retries=0
    ) as client:
        results = describe_many(
            images, "What?", client=client, show=False, cache=True, concurrency=1, retries=0
        )
        rows = results.records()
        produced += [repr(results), results._repr_html_(), repr(rows)]
        produced.append(results.to_pandas().to_csv())
        produced += [pickle.dumps(results).decode("latin-1")]
        for result in results:
            produced += [repr(result), repr(vars(result))]
            if result.error is not None:
                collect_error(produced, result.error)
                produced += [pickle.dumps(result.error).decode("latin-1")]
        # a streamed answer whose Content-Type carries the key is refused, saying what came
        code = None if header == "Content-Type" else 500
        secret_server.queue(Fault.echo_key(header, code=code))
        with pytest.raises(RekaError) as info:
            describe(CAT, "Once more?", client=client, show=False)
        collect_error(produced, info.value)
    produced += _stored(cache)
    assert cache.exists() and _stored(cache)
    if header == "X-Request-ID":
        assert rows[0]["request_id"] == "req_[secure]" and rows[0]["text"]
        assert rows[4]["request_id"] == "req_[secure]" and rows[4]["error"].startswith(
            "BadRequestError: Reka rejected the request: The request failed"
        )
        assert str(info.value).endswith("(HTTP 500, request id req_[secure])")
    elif header == "Content-Type":
        assert str(info.value).startswith(
            "The server answered with text/event-stream, [secure], not an event stream"
        )
    env = child_environment()
    env.update(REKA_API_KEY=SECRET, REKA_BASE_URL=secret_server.base_url)
    out = tmp_path / "lines.jsonl"
    secret_server.queue(Fault.echo_key(header), Fault.echo_key(header, code=400))
    for args in (
        ["describe", str(CAT), "--json", "--no-stream"],
        ["describe", str(CAT), "--api", api],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "reka_nb", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        produced += [proc.stdout, proc.stderr]
    secret_server.queue(*[Fault.echo_key(header)] * 2)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reka_nb",
            "describe",
            str(CAT),
            str(CAT),
            "--each",
            "--jsonl",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    produced += [proc.stdout, proc.stderr, out.read_text() if out.exists() else ""]
    logging.getLogger("reka_nb.test").debug("echoes checked")
