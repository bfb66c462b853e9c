"""The scale section of ``bench_batch.py``: client CPU per image at concurrency 64.

A stub server (raw asyncio, its own process, latency 0) answers ``POST /v1/chat/completions``
with a fixed answer (JSON, or SSE when the body asks to stream) and ``GET /v1/models`` with one
model. Each client runs in a fresh process and reports the process CPU time it spent (every
thread: workers included) divided by the number of images, and its peak RSS. The server's own
CPU per request is printed too, to show it is not the bottleneck.

Clients, side by side: reka_nb's ``describe_many`` (default: the answer cache on, in a fresh
folder, and the transport ``auto``: aiohttp's pool when reka-nb[fast] is installed) and on
httpx's own pool (``transport="httpx"``); the openai SDK (``AsyncOpenAI`` +
``asyncio.Semaphore(64)``, whole answers and streamed); a bare ``httpx.AsyncClient``, a bare
aiohttp client and httpx over the ``httpx-aiohttp`` transport, each posting the same bodies as
reka_nb (built once by reka_nb and read from a file). Rows marked "experiment" patch reka_nb at
run time (see ``EXPERIMENTS``) to measure a change to the client or engine before it is made.

Then peak RSS of ``describe_many`` over 5,000 and 20,000 images, and a 4,000-event stream read
through reka_nb's async client on httpx and on the aiohttp transport against the httpx-sse
floor (median of alternating rounds, as ``bench_stream.py`` does).

Run: ``python benchmarks/bench_batch.py --scale [--images 5000] [--big 20000]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONCURRENCY = 64
MODEL = "reka-flash"
ANSWER = "A small picture of one colour."
STREAM_WORDS = 4000  # the stream-read probe: one word per event

# -- the stub server -------------------------------------------------------------------------


def _json_answer() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
        }
    ).encode()


def _sse(words: list[str]) -> bytes:
    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        event: dict[str, Any] = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            event["usage"] = usage
        return b"data: " + json.dumps(event).encode() + b"\n\n"

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": w}) for w in words]
    usage = {"prompt_tokens": 20, "completion_tokens": len(words), "total_tokens": 20 + len(words)}
    parts.append(chunk({}, "stop", usage))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def _response(body: bytes, content_type: bytes) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nx-request-id: req-stub\r\n\r\n"
    )
    return head + body


class _Stub(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies: all the clients here send."""

    json_reply = _response(_json_answer(), b"application/json")
    sse_short = _response(_sse(re.findall(r"\S+\s*", ANSWER)), b"text/event-stream")
    sse_long = _response(_sse([f"w{i % 97} " for i in range(STREAM_WORDS)]), b"text/event-stream")
    models = _response(
        json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode(),
        b"application/json",
    )
    requests = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            lower = head.lower()
            at = lower.find(b"content-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at)
                length = int(lower[at + 15 : stop if stop >= 0 else len(lower)])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            self.transport.write(self._answer(head, body))

    def _answer(self, head: bytes, body: bytes) -> bytes:
        if head.startswith(b"GET /v1/cpu"):
            text = f"{time.process_time()} {_Stub.requests}".encode()
            return _response(text, b"text/plain")
        if head.startswith(b"GET"):
            return self.models
        _Stub.requests += 1
        if b'"stream":true' in body or b'"stream": true' in body:
            return self.sse_long if b"long story" in body else self.sse_short
        return self.json_reply


def serve_stub(port_file: str) -> None:
    """Run the stub until killed; write its port to ``port_file``."""

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Stub, "127.0.0.1", 0, backlog=512)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    asyncio.run(main())


class StubProcess:
    def __init__(self, folder: Path) -> None:
        port_file = folder / "stub.port"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port_file)],
        )
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{port_file.read_text()}/v1"

    def cpu(self) -> tuple[float, int]:
        """The server's CPU seconds so far and chat requests answered."""
        import httpx

        seconds, count = httpx.get(self.base_url + "/cpu").text.split()
        return float(seconds), int(count)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# -- the clients (each run in a fresh process) ----------------------------------------------

KEY = "stub-key"


def _patch_pool() -> None:
    """Experiment: httpx's pool sized to the concurrency (the default keeps 20 alive)."""
    import httpx

    from reka_nb.client.base import BaseClient

    options = BaseClient._client_options

    def sized(self: Any) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        return {**options(self), "limits": limits}

    BaseClient._client_options = sized  # type: ignore[method-assign]


def _use_aiohttp() -> None:
    """describe_many on the aiohttp transport (``transport="aiohttp"``, reka-nb[fast])."""
    os.environ["REKA_NB_TRANSPORT"] = "aiohttp"


def _use_httpx() -> None:
    """describe_many on httpx's own pool (``transport="httpx"``)."""
    os.environ["REKA_NB_TRANSPORT"] = "httpx"


def _patch_settings() -> None:
    """Experiment: settings resolved once per client (memoised while the environment holds)."""
    from reka_nb.client.base import BaseClient

    settings = BaseClient.settings
    memo: dict[Any, Any] = {}

    def once(self: Any, model: str | None = None) -> Any:
        key = (id(self), model)
        if key not in memo:
            memo[key] = settings(self, model)
        return memo[key]

    BaseClient.settings = once  # type: ignore[method-assign]


def _patch_sync() -> None:
    """Experiment: the cache's WAL synced at checkpoints, not at every store."""
    from reka_nb.cache import AnswerCache

    connect = AnswerCache._connect

    def normal(self: Any) -> Any:
        fresh = self._db is None
        db = connect(self)
        if fresh:
            db.execute("PRAGMA synchronous=NORMAL")
        return db

    AnswerCache._connect = normal  # type: ignore[method-assign]


EXPERIMENTS = {
    "sync": _patch_sync,
    "pool": _patch_pool,
    "aiohttp": _use_aiohttp,
    "httpx": _use_httpx,
    "settings": _patch_settings,
}


def _run_reka(paths: list[str], patches: list[str]) -> int:
    for name in patches:
        EXPERIMENTS[name]()
    import reka_nb

    results = reka_nb.describe_many(paths, "What is it?", concurrency=CONCURRENCY, show=False)
    if results.errors:
        print(results.errors[0].error, file=sys.stderr)
    return len(results) - len(results.errors)


async def _run_openai(bodies: list[dict], base_url: str, stream: bool) -> int:
    import openai

    gate = asyncio.Semaphore(CONCURRENCY)
    ok = 0
    async with openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0) as client:

        async def one(body: dict) -> None:
            nonlocal ok
            async with gate:
                if stream:
                    parts = []
                    chunks = await client.chat.completions.create(
                        model=body["model"], messages=body["messages"], stream=True
                    )
                    async for chunk in chunks:
                        if chunk.choices and chunk.choices[0].delta.content:
                            parts.append(chunk.choices[0].delta.content)
                    text = "".join(parts)
                else:
                    answer = await client.chat.completions.create(
                        model=body["model"], messages=body["messages"]
                    )
                    text = answer.choices[0].message.content or ""
                ok += text == ANSWER

        await asyncio.gather(*(one(b) for b in bodies))
    return ok


async def _run_httpx(bodies: list[dict], base_url: str, transport: str) -> int:
    import httpx

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    options: dict[str, Any] = {"limits": limits, "timeout": 60}
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        options["transport"] = AiohttpTransport(limits=limits)
    gate = asyncio.Semaphore(CONCURRENCY)
    ok = 0
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(**options) as client:

        async def one(body: dict) -> None:
            nonlocal ok
            async with gate:
                r = await client.post(base_url + "/chat/completions", json=body, headers=headers)
                ok += r.json()["choices"][0]["message"]["content"] == ANSWER

        await asyncio.gather(*(one(b) for b in bodies))
    return ok


async def _run_client(bodies: list[dict], base_url: str, transport: str) -> int:
    """reka_nb's AsyncRekaClient alone (no engine: no images read, no cache), a semaphore of
    64 and a pool of 65, asking the same messages: the client and transport's own share."""
    from reka_nb import AsyncRekaClient

    gate = asyncio.Semaphore(CONCURRENCY)
    ok = 0
    async with AsyncRekaClient(
        base_url=base_url,
        api_key=KEY,
        transport=transport,
        max_connections=CONCURRENCY + 1,
        model_info=False,
    ) as client:

        async def one(body: dict) -> None:
            nonlocal ok
            async with gate:
                answer = await client.complete(body["messages"], model=body["model"])
                ok += answer.text == ANSWER

        await asyncio.gather(*(one(b) for b in bodies))
    return ok


async def _run_aiohttp(bodies: list[dict], base_url: str) -> int:
    import aiohttp

    gate = asyncio.Semaphore(CONCURRENCY)
    ok = 0
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: dict) -> None:
            nonlocal ok
            async with (
                gate,
                session.post(base_url + "/chat/completions", json=body, headers=headers) as r,
            ):
                answer = await r.json()
                ok += answer["choices"][0]["message"]["content"] == ANSWER

        await asyncio.gather(*(one(b) for b in bodies))
    return ok


def child(kind: str, paths_file: str, bodies_file: str, base_url: str) -> None:
    """One client run in this fresh process; prints ok count, CPU seconds, peak KiB, wall."""
    patches = kind.split("+")[1:]
    if kind.startswith("reka"):
        paths = json.loads(Path(paths_file).read_text())
        import reka_nb

        count = len(paths)
        cpu, wall = time.process_time(), time.monotonic()
        ok = _run_reka(paths, patches)
    else:
        bodies = json.loads(Path(bodies_file).read_text())
        count = len(bodies)
        if kind.startswith("openai"):
            import openai  # noqa: F401
        elif kind.startswith("client"):
            import reka_nb  # noqa: F401
        elif kind == "aiohttp":
            import aiohttp  # noqa: F401
        else:
            import httpx  # noqa: F401
        cpu, wall = time.process_time(), time.monotonic()
        if kind == "openai":
            ok = asyncio.run(_run_openai(bodies, base_url, stream=False))
        elif kind == "openai-stream":
            ok = asyncio.run(_run_openai(bodies, base_url, stream=True))
        elif kind == "aiohttp":
            ok = asyncio.run(_run_aiohttp(bodies, base_url))
        elif kind.startswith("client"):
            transport = "httpx" if kind == "client-httpx" else "aiohttp"
            ok = asyncio.run(_run_client(bodies, base_url, transport))
        else:
            ok = asyncio.run(
                _run_httpx(bodies, base_url, "aiohttp" if kind == "httpx-aiohttp" else "")
            )
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"count": count, "ok": ok, "cpu": cpu, "wall": wall, "peak_kib": usage.ru_maxrss}
    out["system"] = usage.ru_stime  # of the whole process (imports too): the kernel's share
    out["user"] = usage.ru_utime
    out["switches"] = usage.ru_nvcsw + usage.ru_nivcsw
    print(json.dumps(out))


#: Where a sampled frame's time is counted: the first key found in its file.
AREAS = (
    ("reka_nb/batch/", "reka_nb batch (engine, results)"),
    ("reka_nb/cache.py", "reka_nb answer cache"),
    ("reka_nb/images/", "reka_nb images"),
    ("reka_nb/protocol/", "reka_nb protocol"),
    ("reka_nb/", "reka_nb client (client/aio, base, replies, settings, question; answer)"),
    ("httpcore/", "httpcore"),
    ("httpx/", "httpx"),
    ("h11/", "h11"),
    ("anyio/", "anyio"),
    ("aiohttp/", "aiohttp"),
    ("asyncio/", "asyncio"),
    ("concurrent/", "concurrent.futures (thread pool)"),
    ("threading.py", "threading"),
    ("PIL/", "Pillow"),
    ("json/", "json"),
    ("sqlite3", "sqlite3"),
)
#: Inclusive shares: a sample counts for each of these found anywhere in its stack.
CAUSES = (
    ("_assign_requests_to_connections", "httpcore pool bookkeeping"),
    ("AsyncConnectionPool.handle_async_request", "httpcore pool request (all)"),
    ("AsyncClient.send ", "httpx AsyncClient.send (all transport work)"),
    ("AsyncRekaClient._send ", "reka_nb _send (request, reply read, retries)"),
    ("AsyncRekaClient._read ", "  reading the reply body"),
    ("json_completion", "reply parsing (json_completion)"),
    ("Description.from_completion", "Description.from_completion"),
    ("BaseClient._chat_request", "request building (_chat_request)"),
    ("build_body", "  build_body"),
    ("BaseClient._check_inputs", "  _check_inputs"),
    ("BaseClient.settings ", "settings resolved (BaseClient.settings)"),
    (
        "_Run._prepare (reka_nb/batch/engine.py",
        "engine _Run._prepare (question, key; a thread hop for heavy inputs)",
    ),
    ("prepare_images", "  prepare_images"),
    ("user_message", "  user_message"),
    ("cache_key", "  cache_key"),
    ("PreparedImage.thumbnail", "  thumbnails"),
    ("AnswerCache.get", "cache lookup"),
    ("AnswerCache.put", "cache store"),
    ("_worker (concurrent/futures/thread.py", "thread-pool threads (all work in them)"),
    ("to_thread", "asyncio.to_thread on the loop side"),
    ("_Desk._work", "cache lookups and stores, batched (_Desk)"),
    ("SessionUsage.add", "SESSION_USAGE.add"),
)


#: Leaf frames of a thread that waits (py-spy samples idle threads here): left out.
WAITS = (
    "_worker (concurrent/futures/thread.py:81)",  # a pool thread waiting for work
    "_Run.run_sync (reka_nb/batch/api.py:",  # the caller's thread waiting for progress
    "select (selectors.py:",
    "Condition.wait (threading.py:",
    "Thread.join (threading.py:",
    "Event.wait (threading.py:",
)


def _lock_waits(cache_source: str) -> tuple[str, ...]:
    """The cache's ``with self._lock:`` lines (a thread there waits for another's query)."""
    lines = Path(cache_source).read_text().splitlines()
    found = [i for i, text in enumerate(lines, 1) if text.strip() == "with self._lock:"]
    return tuple(f"(reka_nb/cache.py:{i})" for i in found)


def analyse(raw: str, top: int = 25, cache_source: str | None = None) -> None:
    """Shares of py-spy's raw samples, imports and waiting threads left out: own time by
    area, inclusive time of the causes, the top leaf functions. ``cache_source``: the
    cache.py the samples were taken with (its lock lines are waits)."""
    import reka_nb.cache

    waits = WAITS + _lock_waits(cache_source or reka_nb.cache.__file__)
    stacks: list[tuple[list[str], int]] = []
    waited = 0
    for line in Path(raw).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any("_find_and_load" in f for f in frames):
            continue  # imports: a one-time cost
        if any(w in frames[-1] for w in waits):
            waited += int(count)
            continue
        stacks.append((frames, int(count)))
    total = sum(n for _, n in stacks) or 1
    print(f"({waited:,} samples of waiting threads left out)")
    areas: dict[str, int] = {}
    leaves: dict[str, int] = {}
    for frames, n in stacks:
        leaf = frames[-1]
        where = next((label for key, label in AREAS if key in leaf), "other")
        areas[where] = areas.get(where, 0) + n
        leaves[leaf] = leaves.get(leaf, 0) + n
    print(f"{total:,} samples of running threads, imports left out")
    print("own time by area:")
    for label, n in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"  {n / total:6.1%}  {label}")
    print("inclusive time of:")
    for key, label in CAUSES:
        n = sum(c for frames, c in stacks if any(key in f for f in frames))
        print(f"  {n / total:6.1%}  {label}")
    print("top functions (own time):")
    for leaf, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {n / total:6.1%}  {leaf.split('site-packages/')[-1]}")


def profile(tmp: Path, paths_file: Path, stub: StubProcess, env: dict, kind: str) -> None:
    """describe_many sampled by py-spy (pip install py-spy) in a fresh process: ``--gil``
    samples the thread holding the GIL (Python's CPU), and ``analyse`` leaves out the samples
    where that is a thread waiting (py-spy names the last holder when none holds it)."""
    raw = tmp / f"profile-{kind}.txt"
    command = [sys.executable, __file__, "--child", kind, str(paths_file), "-", stub.base_url]
    subprocess.run(
        ["py-spy", "record", "--gil", "-r", "100", "-f", "raw", "-o", str(raw), "--", *command],
        env=env,
        check=True,
        capture_output=True,
        timeout=3600,
    )
    print(f"\nwhere the CPU goes: {kind}, sampled by py-spy")
    analyse(str(raw))


def run_child(kind: str, paths_file: Path, bodies_file: Path, stub: StubProcess, env: dict) -> dict:
    if kind.startswith("baseline"):  # reka_nb from BASELINE (another checkout), same script
        env = {**env, "PYTHONPATH": os.environ["BASELINE"]}
        kind = "reka" + kind[len("baseline") :]
    before = stub.cpu()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            str(paths_file),
            str(bodies_file),
            stub.base_url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    after = stub.cpu()
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    if proc.stderr.strip():
        print(f"[{kind}] {proc.stderr.strip()[-500:]}", file=sys.stderr)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    requests = after[1] - before[1]
    out["server_ms"] = (after[0] - before[0]) / max(requests, 1) * 1000
    out["requests"] = requests
    return out


# -- the stream read ------------------------------------------------------------------------


async def _stream_reads(base_url: str, rounds: int) -> list[tuple[str, list[float]]]:
    import httpx
    from bench_stream import aread_baseline, aread_reka_nb
    from httpx_aiohttp import AiohttpTransport

    from reka_nb import AsyncRekaClient

    messages = [{"role": "user", "content": "Tell me a long story."}]
    body = {"model": MODEL, "stream": True, "messages": messages}

    def floor(http: httpx.AsyncClient) -> Any:
        return aread_baseline(http, base_url, KEY, body)

    def ours(client: AsyncRekaClient) -> Any:
        return aread_reka_nb(client, messages)

    plain = AsyncRekaClient(base_url=base_url, api_key=KEY, model_info=False, transport="httpx")
    fast = AsyncRekaClient(base_url=base_url, api_key=KEY, model_info=False, transport="aiohttp")
    readers: list[tuple[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=60) as h1,
        httpx.AsyncClient(timeout=60, transport=AiohttpTransport()) as h2,
    ):
        readers = [
            ("httpx-sse floor, httpx", lambda: floor(h1)),
            ("httpx-sse floor, aiohttp transport", lambda: floor(h2)),
            ("reka_nb AsyncRekaClient.stream, httpx", lambda: ours(plain)),
            ("reka_nb AsyncRekaClient.stream, aiohttp transport", lambda: ours(fast)),
        ]
        expected = await readers[0][1]()
        for name, read in readers:  # warm each once, and check they agree
            assert await read() == expected, name
        times: dict[str, list[float]] = {name: [] for name, _ in readers}
        for _ in range(rounds):
            for name, read in readers:
                t = time.perf_counter()
                await read()
                times[name].append(time.perf_counter() - t)
    await plain.aclose()
    await fast.aclose()
    return [(name, times[name]) for name, _ in readers]


# -- the section ----------------------------------------------------------------------------


def _bodies(paths: list[str]) -> list[dict]:
    """The request bodies reka_nb sends for these images (built by reka_nb itself)."""
    from reka_nb.images import prepare_images
    from reka_nb.protocol.messages import build_body, user_message

    out = []
    for path in paths:
        message = user_message("What is it?", prepare_images(path), "openai")
        out.append(build_body([message], model=MODEL, stream=False, api="openai", params={}))
    return out


def main(
    tmp: Path,
    small_images: Any,
    images: int,
    big: int,
    rounds: int,
    kinds: list[str],
    memory_kinds: list[str] = ["reka"],  # noqa: B006 - read only
    profiles: list[str] = [],  # noqa: B006 - read only
) -> None:
    stub = StubProcess(tmp)
    try:
        paths = small_images(tmp / "scale", max(images, big))
        paths_file, bodies_file = tmp / "paths.json", tmp / "bodies.json"
        paths_file.write_text(json.dumps(paths[:images]))
        bodies_file.write_text(json.dumps(_bodies(paths[:images])))
        env = {
            **os.environ,
            "REKA_BASE_URL": stub.base_url,
            "REKA_API_KEY": KEY,
            "REKA_NB_CACHE": str(tmp / "scale-cache"),
        }
        rows = []
        for kind in kinds:
            env["REKA_NB_CACHE"] = str(tmp / f"cache-{len(rows)}")  # a fresh cache each run
            out = run_child(kind, paths_file, bodies_file, stub, env)
            rows.append((kind, out))
            print(f"  {kind}: {out['cpu'] / out['count'] * 1000:.2f} ms/image", file=sys.stderr)
        print(
            f"\nclient CPU per image: {images:,} images, concurrency {CONCURRENCY}, latency 0, "
            "each client a fresh process"
        )
        print(
            f"{'client':<34}{'CPU ms/image':>13}{'images/s CPU':>13}{'wall s':>8}"
            f"{'peak MiB':>9}{'ok':>7}{'server ms/req':>14}"
        )
        for kind, out in rows:
            per = out["cpu"] / out["count"]
            print(
                f"{LABELS.get(kind, kind):<34}{per * 1000:>13.2f}{1 / per:>13,.0f}"
                f"{out['wall']:>8.1f}{out['peak_kib'] / 1024:>9.0f}{out['ok']:>7}"
                f"{out['server_ms']:>14.3f}"
            )
        per_image = {kind: out["cpu"] / out["count"] for kind, out in rows}
        floor = per_image.get("httpx-aiohttp")
        for kind in ("reka", "reka+aiohttp", "client"):
            if floor and kind in per_image:
                print(
                    f"{LABELS[kind].strip()} / bare httpx on httpx-aiohttp: "
                    f"{per_image[kind] / floor:.2f}x (target <= 2)"
                )
        if "reka" in per_image and "openai" in per_image:
            print(
                f"{LABELS['reka'].strip()} / openai: "
                f"{per_image['reka'] / per_image['openai']:.2f}x (target <= 1)"
            )
        for kind in memory_kinds if big else []:
            big_file = tmp / "paths-big.json"
            big_file.write_text(json.dumps(paths[:big]))
            few = next((o for k, o in rows if k == kind), None)
            if few is None:
                env["REKA_NB_CACHE"] = str(tmp / f"cache-few-{kind}")
                few = run_child(kind, paths_file, bodies_file, stub, env)
            env["REKA_NB_CACHE"] = str(tmp / f"cache-big-{kind}")
            many = run_child(kind, big_file, bodies_file, stub, env)
            ratio = many["peak_kib"] / few["peak_kib"]
            print(
                f"\npeak RSS, {LABELS.get(kind, kind).strip()}: {images:,} images "
                f"{few['peak_kib'] / 1024:.0f} MiB, {big:,} images "
                f"{many['peak_kib'] / 1024:.0f} MiB: {ratio:.2f}x (target <= 1.2)"
                f"; CPU {many['cpu'] / many['count'] * 1000:.2f} ms/image at {big:,}"
            )
        for kind in profiles:
            env["REKA_NB_CACHE"] = str(tmp / f"cache-profile-{kind}")
            profile(tmp, paths_file, stub, env, kind)
        if rounds:
            reads = asyncio.run(_stream_reads(stub.base_url, rounds))
            floor = statistics.median(reads[0][1])
            print(f"\nstream read, {STREAM_WORDS:,} events, median of {rounds} alternating rounds")
            print(f"{'reader':<52}{'median ms':>10}{'vs floor':>10}")
            for name, times in reads:
                med = statistics.median(times)
                print(f"{name:<52}{med * 1000:>10.1f}{med / floor:>10.2f}")
    finally:
        stub.stop()


LABELS = {
    "baseline": "reka_nb describe_many, BASELINE",
    "reka": "reka_nb describe_many (default)",
    "reka+httpx": "reka_nb, transport='httpx'",
    "reka+aiohttp": "reka_nb, transport='aiohttp'",
    "reka+pool": "  experiment: pool of 64",
    "reka+settings": "  experiment: settings once",
    "reka+pool+settings": "  experiment: pool + settings",
    "reka+aiohttp+settings": "  experiment: aiohttp + settings",
    "client": "reka_nb client alone, aiohttp",
    "client-httpx": "reka_nb client alone, httpx",
    "openai": "openai AsyncOpenAI + semaphore",
    "openai-stream": "openai, streamed",
    "httpx": "bare httpx.AsyncClient",
    "aiohttp": "bare aiohttp",
    "httpx-aiohttp": "bare httpx on httpx-aiohttp",
}
DEFAULT_KINDS = [
    "reka",
    "reka+httpx",
    "client",
    "client-httpx",
    "openai",
    "openai-stream",
    "httpx",
    "aiohttp",
    "httpx-aiohttp",
]
EXPERIMENT_KINDS = [
    "reka+pool",
    "reka+settings",
    "reka+pool+settings",
    "reka+aiohttp+settings",
]

if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve_stub(sys.argv[2])
    elif sys.argv[1] == "--child":
        child(*sys.argv[2:6])
    elif sys.argv[1] == "--analyse":  # a py-spy raw file
        analyse(sys.argv[2], cache_source=sys.argv[3] if len(sys.argv) > 3 else None)
