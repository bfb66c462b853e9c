"""describe_dataset on a real local Ray cluster (ray.init(num_cpus=2)) against the offline
server in this process, over real sockets: answers, one cluster-wide rate limit and pause,
resuming after a kill, bad rows, and the key kept out of Ray's session files."""

from __future__ import annotations

import os
import pickle
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

try:
    import ray
    import ray.data
except ImportError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(
        f"Ray cannot be imported for this Python ({exc}); pip install 'reka-nb[ray]'",
        allow_module_level=True,
    )

import reka_nb.ray as rr
from reka_nb import AsyncRekaClient, ConfigurationError, InvalidRequestError, describe_many
from reka_nb.cache import FILE_NAME, AnswerCache
from reka_nb.client.transports import fast_installed
from reka_nb.images import prepare_image
from reka_nb.ray.dataset import ANSWER_COLUMNS, _Config
from reka_nb.testing import Fault, OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "docs" / "images" / "cat.jpeg"
PROMPT = "Write alt text."
# A key made for this session: the session-folder search below looks for exactly this.
KEY = "reka-ray-test-" + secrets.token_hex(12)

pytestmark = [
    # Ray's own deprecation notices, and its helper processes' Popen objects collected while
    # they still run, are Ray's business, not this project's.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
    pytest.mark.filterwarnings("ignore:subprocess .* is still running:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


class _PatientClock:
    """``time`` for ray._private.node while Ray starts: its monotonic clock runs at a quarter
    speed, so the 30 s Ray allows its node to register become 2 minutes. On a machine shared
    with other test suites Ray's Python agents can take longer than 30 s to start."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def monotonic() -> float:
        return time.monotonic() / 4


def start_ray(attempts: int = 2) -> None:
    """ray.init(num_cpus=2, include_dashboard=False), patient with a busy machine. Should the
    node still fail to start (its raylet gives its agents about 15 s), the half-started node's
    processes are ended and Ray is started once more; after the last attempt they are ended
    too, so a failed start leaves no Ray process behind for the rest of the run."""
    import ray._private.node as node

    for attempt in range(attempts):
        node.time = _PatientClock()  # type: ignore[assignment]
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            return
        except Exception as exc:
            tb = exc.__traceback__
            while tb is not None:
                half = tb.tb_frame.f_locals.get("self")
                if isinstance(half, node.Node):
                    half.kill_all_processes(check_alive=False, allow_graceful=False)
                    break
                tb = tb.tb_next
            ray.shutdown()
            if "timed out during startup" not in str(exc) or attempt == attempts - 1:
                raise
        finally:
            node.time = time


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """One local Ray for the run (only this module uses it, and it ends with the module so its
    processes leave the CPUs to the rest of the suite). The workers inherit this process's
    environment as it is when Ray starts: the key (never passed with the work) and the path to
    this checkout."""
    saved = {name: os.environ.get(name) for name in ("REKA_API_KEY", "PYTHONPATH")}
    os.environ["REKA_API_KEY"] = KEY
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    try:  # a start that fails still ends Ray and gives the environment back
        start_ray()
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def ray_server_session() -> Iterator[OfflineServer]:
    with OfflineServer(api_key=KEY, keep_bodies=False) as server:
        yield server


@pytest.fixture
def rserver(
    ray_cluster: str, ray_server_session: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OfflineServer]:
    """The offline server, reset, named by REKA_BASE_URL and REKA_API_KEY in this process."""
    server = ray_server_session
    server.reset()
    monkeypatch.setenv("REKA_BASE_URL", server.base_url)
    monkeypatch.setenv("REKA_API_KEY", KEY)
    yield server
    server.check_errors()


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` different JPEGs made from the cat: sizes, flips, greyscale."""
    folder.mkdir(parents=True, exist_ok=True)
    cat = Image.open(CAT).convert("RGB")
    paths = []
    for i in range(count):
        im = cat.resize((60 + i, 40 + i))
        if i % 2:
            im = ImageOps.mirror(im)
        if i % 3 == 0:
            im = ImageOps.grayscale(im).convert("RGB")
        path = folder / f"cat{i:03d}.jpg"
        im.save(path, quality=85)
        paths.append(path)
    return paths


def rows_by_path(ds: ray.data.Dataset) -> dict[str, dict]:
    return {os.path.basename(r["path"]): r for r in ds.drop_columns(["bytes"]).take_all()}


def test_same_answers_as_describe_many(rserver: OfflineServer, tmp_path: Path) -> None:
    paths = make_images(tmp_path / "photos", 50)
    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    out = rr.describe_dataset(ds, PROMPT, concurrency=2, cache=False)
    assert rserver.chat_requests() == []  # lazy: nothing asked until the rows are wanted
    rows = rows_by_path(out)
    via_ray = len(rserver.chat_requests())
    local = describe_many(
        [str(p) for p in paths],
        PROMPT,
        client=AsyncRekaClient(),
        cache=False,
        show=False,
    ).records()
    assert via_ray == 50 and len(rserver.chat_requests()) == 100
    assert set(rows) == {p.name for p in paths}
    first = rows[paths[0].name]
    assert set(first) == {"path", *ANSWER_COLUMNS}
    for path, record in zip(paths, local, strict=True):
        row = rows[path.name]
        assert record["error"] is None and row["error"] is None
        assert "JPEG" in row["text"] and PROMPT in row["text"]
        for name in ("text", "model", "input_tokens", "output_tokens", "finish_reason"):
            assert row[name] == record[name], (path.name, name)
        assert row["cached"] is False and row["request_id"].startswith("req_")


def test_one_rate_limit_for_every_actor(rserver: OfflineServer, tmp_path: Path) -> None:
    """4 actors, 300 requests/minute for all of them: the server's own bucket (one second's
    worth of burst) never answers 429, and the requests take the time the limit dictates
    (a limit applied per actor would send them four times as fast)."""
    count, rpm = 40, 300
    make_images(tmp_path / "photos", count)
    rserver.requests_per_minute = rpm
    rserver.latency = 0.2
    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    out = rr.describe_dataset(
        ds, PROMPT, concurrency=4, requests_per_minute=rpm, in_flight=4, batch_size=5, cache=False
    )
    rows = rows_by_path(out)
    assert len(rows) == count and all(r["error"] is None for r in rows.values())
    chats = rserver.chat_requests()
    assert [r.status for r in chats] == [200] * count  # no 429
    times = sorted(r.received for r in chats)
    for start in times:  # no minute window above the limit
        assert sum(1 for t in times if start <= t < start + 60) <= rpm
    ideal = (count - 1) * 60 / rpm
    assert times[-1] - times[0] >= 0.9 * ideal


def test_retry_after_pauses_every_actor(rserver: OfflineServer, tmp_path: Path) -> None:
    """One 429 with Retry-After: 3 (to the 9th request): no actor starts a request until the
    pause ends, though four actors have requests waiting."""
    make_images(tmp_path / "photos", 24)
    rserver.latency = 0.1
    rserver.queue(*([Fault.ok()] * 8), Fault.status(429, retry_after=3))
    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    out = rr.describe_dataset(ds, PROMPT, concurrency=4, in_flight=2, batch_size=6, cache=False)
    rows = rows_by_path(out)
    assert len(rows) == 24 and all(r["error"] is None for r in rows.values())
    chats = rserver.chat_requests()
    assert [r.status for r in chats].count(429) == 1 and len(chats) == 25
    limited = next(r.received for r in chats if r.status == 429)
    # requests that took their slot before the pause reached the desk (one message between
    # actors: milliseconds, or most of a second on a machine this busy) may still go; then
    # nothing until the pause ends
    during = [r.received - limited for r in chats if limited + 1.2 <= r.received < limited + 2.9]
    assert during == []
    assert max(r.received for r in chats) > limited + 2.9


_KILLED_RUN = """
import sys, ray, reka_nb.ray as rr
ray.init(address=sys.argv[1], log_to_driver=False)
ray.data.DataContext.get_current().enable_progress_bars = False
ds = ray.data.read_binary_files(sys.argv[2], include_paths=True)
out = rr.describe_dataset(ds, "Write alt text.", concurrency=2, in_flight=2, batch_size=4)
out.drop_columns(["bytes"]).write_parquet(sys.argv[3])
"""


def test_a_killed_run_rerun_asks_only_for_the_missing_rows(
    rserver: OfflineServer, tmp_path: Path, ray_cluster: str
) -> None:
    count = 40
    make_images(tmp_path / "photos", count)
    cache_folder = Path(os.environ["REKA_NB_CACHE"])
    rserver.latency = 0.3
    env = {**os.environ, "PYTHONPATH": os.environ["PYTHONPATH"]}
    driver = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, ray_cluster, str(tmp_path / "photos"), "out"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while len(rserver.chat_requests()) < 8:
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the run sent nothing"
            time.sleep(0.05)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        driver.stderr.close()  # type: ignore[union-attr]
    # Ray ends the killed driver's actors; wait until nothing more arrives
    seen = -1
    while seen != len(rserver.chat_requests()):
        seen = len(rserver.chat_requests())
        time.sleep(1.5)
    cache = AnswerCache(cache_folder / FILE_NAME)
    stored = cache.count()
    cache.close()
    assert 0 < stored < count
    first = len(rserver.chat_requests())

    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    rows = rows_by_path(rr.describe_dataset(ds, PROMPT, concurrency=2))
    assert len(rows) == count and all(r["error"] is None for r in rows.values())
    assert len(rserver.chat_requests()) - first == count - stored
    assert sum(r["cached"] for r in rows.values()) == stored


def test_skip_answered_resumes_from_the_output_folder(
    rserver: OfflineServer, tmp_path: Path
) -> None:
    """On a cluster the answers already written are what a re-run skips."""
    make_images(tmp_path / "photos", 12)
    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    out = str(tmp_path / "out")
    first = rr.describe_dataset(ds.limit(7), PROMPT, concurrency=1, cache=False)
    first.drop_columns(["bytes"]).write_parquet(out)
    assert len(rserver.chat_requests()) == 7
    (tmp_path / "out" / "half-written.parquet").write_bytes(b"PAR1 cut short")
    with pytest.warns(UserWarning, match="half-written.parquet.*asked again"):
        rest = rr.skip_answered(ds, out)
    second = rr.describe_dataset(rest, PROMPT, concurrency=1, cache=False)
    second.drop_columns(["bytes"]).write_parquet(out)
    assert len(rserver.chat_requests()) == 12
    (tmp_path / "out" / "half-written.parquet").unlink()
    done = ray.data.read_parquet(out).take_all()
    assert sorted(os.path.basename(r["path"]) for r in done) == [
        f"cat{i:03d}.jpg" for i in range(12)
    ]
    assert rr.skip_answered(ds, out).count() == 0


def test_bad_rows_become_error_rows_and_the_dataset_completes(
    rserver: OfflineServer, tmp_path: Path
) -> None:
    good = make_images(tmp_path / "photos", 2)
    (tmp_path / "notes.txt").write_text("not an image")
    paths = [str(good[0]), str(tmp_path / "missing.jpg"), str(tmp_path / "notes.txt"), str(good[1])]
    expected = []
    for p in paths[1:3]:
        with pytest.raises(Exception) as info:
            prepare_image(p)
        expected.append(f"{type(info.value).__name__}: {info.value}")
    ds = ray.data.from_items([{"image": p} for p in paths])
    rows = rr.describe_dataset(ds, PROMPT, column="image", concurrency=1, cache=False).take_all()
    rows.sort(key=lambda r: paths.index(r["image"]))
    assert [r["error"] for r in rows] == [None, *expected, None]
    assert [r["text"] is None for r in rows] == [False, True, True, False]
    assert len(rserver.chat_requests()) == 2  # nothing was sent for the bad rows


def test_a_missing_column_is_a_clear_error(rserver: OfflineServer) -> None:
    ds = ray.data.from_items([{"image": "cat.jpg"}])
    out = rr.describe_dataset(ds, PROMPT, concurrency=1, cache=False)  # column="bytes"
    with pytest.raises(
        Exception, match=r"the dataset has no column 'bytes' \(its columns: 'image'\)"
    ):
        out.take_all()
    assert rserver.requests == []


def test_numpy_images_from_read_images(rserver: OfflineServer, tmp_path: Path) -> None:
    make_images(tmp_path / "photos", 3)
    ds = ray.data.read_images(str(tmp_path / "photos"), include_paths=True)
    rows = rr.describe_dataset(ds, PROMPT, column="image", concurrency=1, cache=False).take_all()
    sizes = sorted(r["image"].shape[:2] for r in rows)
    assert sizes == [(40, 60), (41, 61), (42, 62)]
    for row in rows:
        h, w = row["image"].shape[:2]
        assert row["error"] is None and f"{w}×{h} px" in row["text"]


@pytest.mark.skipif(not fast_installed(), reason="reka-nb[fast] is not installed")
def test_each_transport_gives_the_same_rows(rserver: OfflineServer, tmp_path: Path) -> None:
    paths = make_images(tmp_path / "photos", 6)
    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    rows = {
        name: rows_by_path(
            rr.describe_dataset(ds, PROMPT, concurrency=1, cache=False, transport=name)
        )
        for name in ("httpx", "aiohttp")
    }
    assert len(rserver.chat_requests()) == 12
    for path in paths:
        plain, fast = rows["httpx"][path.name], rows["aiohttp"][path.name]
        assert plain["error"] is None and fast["error"] is None
        assert "JPEG" in fast["text"] and PROMPT in fast["text"]
        for name in ("text", "model", "input_tokens", "output_tokens", "finish_reason"):
            assert fast[name] == plain[name], (path.name, name)


def test_an_unknown_transport_is_refused_before_ray_runs(rserver: OfflineServer) -> None:
    ds = ray.data.from_items([{"bytes": b"x"}])
    with pytest.raises(ConfigurationError) as info:
        rr.describe_dataset(ds, PROMPT, transport="aiohtp")
    assert str(info.value) == (
        "transport must be one of 'auto', 'httpx', 'aiohttp', not 'aiohtp' "
        "(did you mean 'aiohttp'?)"
    )
    assert rserver.requests == []


def test_bad_arguments_are_refused_before_anything_runs(rserver: OfflineServer) -> None:
    ds = ray.data.from_items([{"bytes": b"x"}])
    cases = [
        ({"concurrency": 0}, "concurrency must be a whole number >= 1, not 0"),
        ({"in_flight": 1.5}, "in_flight must be a whole number >= 1, not 1.5"),
        ({"requests_per_minute": 0}, "requests_per_minute must be a number above 0"),
        ({"num_cpus": -1}, "num_cpus must be a number >= 0, not -1"),
        ({"cache": 3}, "cache must be True, False or a folder, not 3"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidRequestError, match=message.replace(".", r"\.")):
            rr.describe_dataset(ds, PROMPT, **kwargs)
    with pytest.raises(InvalidRequestError, match=r"takes a ray\.data\.Dataset, not list"):
        rr.describe_dataset([b"x"], PROMPT)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="the prompt must be a non-empty string"):
        rr.describe_dataset(ds, "  ")
    assert rserver.requests == []


def test_without_ray_the_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "import reka_nb.ray as rr\n"
        "assert 'ray' not in sys.modules, 'importing reka_nb.ray imported ray'\n"
        "sys.modules['ray'] = None  # as if Ray were not installed\n"
        "try:\n    rr.describe_dataset(None)\n"
        "except ImportError as e:\n    print(e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip().endswith(": pip install 'reka-nb[ray]'")
    assert proc.stdout.startswith("reka_nb.ray needs Ray Data, which is not installed")


def test_the_key_is_in_no_argument_column_or_session_file(
    rserver: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run once more, then read every file under Ray's session folder: the key is nowhere,
    though a line a worker printed is found (so the search does reach the workers' logs)."""
    make_images(tmp_path / "photos", 4)
    sent: dict[str, Any] = {}
    map_batches = ray.data.Dataset.map_batches

    def spy(self: ray.data.Dataset, fn: Any, **kwargs: Any) -> ray.data.Dataset:
        sent.update(kwargs)
        return map_batches(self, fn, **kwargs)

    monkeypatch.setattr(ray.data.Dataset, "map_batches", spy)
    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    rows = rr.describe_dataset(ds, PROMPT, concurrency=1, cache=False).take_all()
    assert len(rows) == 4 and all(KEY not in repr(r) for r in rows)
    config, _desk = sent["fn_constructor_args"]
    assert isinstance(config, _Config) and config.base_url == rserver.base_url
    assert KEY.encode() not in pickle.dumps(config) and KEY not in repr(sent)

    marker = "reka-nb-scan-marker-" + secrets.token_hex(8)

    @ray.remote(num_cpus=0)
    def shout() -> None:
        print(marker, flush=True)
        print(marker, file=sys.stderr, flush=True)

    ray.get(shout.remote())
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    deadline = time.monotonic() + 10
    while True:
        key_in, marker_in, files = [], [], 0
        for folder, _, names in os.walk(session):  # symlinks to folders are not followed
            for name in names:
                path = Path(folder, name)
                if not path.is_file() or path.is_symlink():
                    continue  # a socket, or a link to a file read under its own name
                files += 1
                try:
                    data = path.read_bytes()
                except OSError:
                    continue  # a file gone meanwhile
                if KEY.encode() in data:
                    key_in.append(str(path))
                if marker.encode() in data:
                    marker_in.append(str(path))
        if marker_in or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert files > 20 and marker_in, (files, marker_in)
    assert key_in == []


def test_the_readme_example_runs(rserver: OfflineServer, tmp_path: Path) -> None:
    """README's Ray block, with the bucket and the output folder on this machine."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(
        r"^```python\n(import ray, reka_nb\.ray as rr\n.*?)^```", readme, re.M | re.S
    )
    paths = make_images(tmp_path / "photos", 8)  # enough files for the example's 4 actors
    out_folder = tmp_path / "alt_text"
    code = code.replace("s3://bucket/photos/", str(tmp_path / "photos")).replace(
        '"alt_text/"', repr(str(out_folder))
    )
    exec(compile(code, "README.md", "exec"), {})
    import pyarrow.parquet as pq

    table = pq.read_table(out_folder).to_pylist()
    assert sorted(Path(row["path"]).name for row in table) == sorted(p.name for p in paths)
    assert all(row["error"] is None and PROMPT in row["text"] for row in table)
    assert "bytes" not in table[0]
    assert len(rserver.chat_requests()) == 8


def test_a_killed_limiter_desk_restarts_and_the_dataset_completes(
    rserver: OfflineServer, tmp_path: Path
) -> None:
    """SIGKILL of the rate-limit desk mid-run: Ray restarts it, the actors' calls go to the new
    one, and every row is answered."""
    import threading

    from reka_nb.ray.limiter import desk_name

    count = 30
    make_images(tmp_path / "photos", count)
    rserver.latency = 0.2
    killed: dict[str, int] = {}

    def kill_the_desk() -> None:
        deadline = time.monotonic() + 120
        while len(rserver.chat_requests()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        desk = ray.get_actor(desk_name(rserver.base_url, KEY))
        killed["pid"] = ray.get(desk.pid.remote())
        os.kill(killed["pid"], signal.SIGKILL)
        killed["at"] = len(rserver.chat_requests())

    killer = threading.Thread(target=kill_the_desk, daemon=True)
    killer.start()
    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    out = rr.describe_dataset(
        ds, PROMPT, concurrency=2, requests_per_minute=240, in_flight=2, batch_size=5, cache=False
    )
    rows = rows_by_path(out)
    killer.join(timeout=10)
    assert 6 <= killed["at"] < count  # the desk died mid-run
    assert len(rows) == count and [r["error"] for r in rows.values()] == [None] * count
    desk = ray.get_actor(desk_name(rserver.base_url, KEY))
    assert ray.get(desk.pid.remote()) != killed["pid"]  # a new desk process


def test_the_offline_try_out_of_readme_and_scale_runs(
    ray_cluster: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block that tries Ray on the offline server, the same in the README and
    docs/scale.md, run on this module's Ray (already started: its ray.init is left out)."""
    import re

    from reka_nb import stop_offline_server

    pattern = r"^```python\n(import ray, reka_nb, reka_nb\.ray as rr\n.*?)^```"
    (code,) = re.findall(pattern, (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S)
    (same,) = re.findall(pattern, (ROOT / "docs" / "scale.md").read_text(), re.M | re.S)
    assert code == same
    assert "ray.init(num_cpus=2)\n" in code
    code = code.replace("ray.init(num_cpus=2)\n", "")
    monkeypatch.chdir(ROOT)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        stop_offline_server()
    printed = capsys.readouterr().out
    assert printed.startswith("This is reka_nb's offline server: no model ran")
    assert PROMPT in printed


def test_a_schema_adds_a_column_per_field(rserver: OfflineServer, tmp_path: Path) -> None:
    paths = make_images(tmp_path / "photos", 3)
    ds = ray.data.from_items([{"image": str(p), "people": "kept"} for p in paths])
    out = rr.describe_dataset(
        ds, PROMPT, column="image", concurrency=1, cache=False, schema="caption, people int"
    )
    rows = sorted(out.take_all(), key=lambda r: r["image"])
    assert set(rows[0]) == {"image", "people", "caption", "field_people", *ANSWER_COLUMNS}
    note = "No model ran: reka_nb's offline server made this answer from the schema."
    for path, row in zip(paths, rows, strict=True):
        assert row["people"] == "kept" and row["field_people"] == 1 and row["error"] is None
        width, height = Image.open(path).size
        assert row["caption"].startswith(f"{note} Image 1: JPEG, {width}×{height} px")
    labelled = rr.describe_dataset(ds, PROMPT, column="image", concurrency=1, labels=["a", "b"])
    assert sorted(r["label"] for r in labelled.take_all()) == ["a", "a", "a"]


def test_an_unusable_schema_is_refused_before_ray_runs(rserver: OfflineServer) -> None:
    from reka_nb import ConfigurationError

    ds = ray.data.from_items([{"bytes": b"x"}])
    with pytest.raises(ConfigurationError, match="schema field 'n' has an unknown type 'number'"):
        rr.describe_dataset(ds, PROMPT, schema="n number")
    assert rserver.requests == []


def test_a_desk_outlives_the_dataset_that_made_it(rserver: OfflineServer, tmp_path: Path) -> None:
    """Ray ends an actor once its creator's handle is gone: the desk made for a first dataset
    must still answer a second dataset on the same key after the first one is dropped."""
    import gc

    make_images(tmp_path / "photos", 4)
    ds = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    first = rr.describe_dataset(ds, PROMPT, concurrency=1, requests_per_minute=600, cache=False)
    second = rr.describe_dataset(ds, PROMPT, concurrency=1, requests_per_minute=600, cache=False)
    del first
    gc.collect()
    time.sleep(1.0)  # time for Ray to act on the dropped handle
    rows = rows_by_path(second)
    assert len(rows) == 4 and [r["error"] for r in rows.values()] == [None] * 4
