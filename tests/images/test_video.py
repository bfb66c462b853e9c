"""Short videos: read from the bytes, checked before sending, answered end to end."""

from __future__ import annotations

import base64
import contextlib
import math
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from _clips import crafted_mp4, crafted_webm, ebml, make_clip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reka_nb import (
    ImageError,
    LongVideoWarning,
    PreparedVideo,
    RekaClient,
    VideoError,
    describe_many,
    prepare_images,
)
from reka_nb.images import read_video_info
from reka_nb.images import video as video_module
from reka_nb.images.video import MAX_STEPS, sniff_video
from reka_nb.notebook.display import images_bundle, waiting_bundle
from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = str(ROOT / "docs" / "images" / "cat.jpeg")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    made = {
        "mp4": make_clip("mp4"),
        "mov": make_clip("mov"),
        "webm": make_clip("webm"),
        "live.webm": make_clip("webm", seconds=1.5, seekable=False),
        "long.mp4": make_clip("mp4", seconds=31, fps=1),
    }
    out = {}
    for name, data in made.items():
        path = folder / (name if "." in name else f"clip.{name}")
        path.write_bytes(data)
        out[name] = path
    return out


def ask(server: OfflineServer, clip: object, prompt: str = "What happens?", **kw):
    """describe() on a client of its own, closed after the answer."""
    api = kw.pop("api", None)
    with RekaClient(base_url=server.base_url, api_key=server.api_key, api=api) as client:
        return client.describe(clip, prompt, show=False, **kw)


# -- reading the container (no decoder) --------------------------------------------------------


@pytest.mark.parametrize(("name", "container"), [("mp4", "MP4"), ("mov", "MOV"), ("webm", "WebM")])
def test_container_duration_and_size(clips, name: str, container: str) -> None:
    info = read_video_info(clips[name].read_bytes())
    assert (info.container, info.duration, info.width, info.height) == (container, 2.0, 64, 48)


def test_webm_without_a_duration_is_timed_by_its_blocks(clips) -> None:
    data = clips["live.webm"].read_bytes()
    assert b"\x44\x89" not in data[:200]  # no Duration element in its Info
    assert read_video_info(data).duration == 1.5


def test_damaged_and_foreign_files_are_refused(clips) -> None:
    data = clips["mp4"].read_bytes()
    with pytest.raises(VideoError) as info:
        read_video_info(data[:1000], "'cut.mp4'")
    assert str(info.value) == "'cut.mp4' is a damaged MP4 file (the 'mdat' box runs past the end)"
    mkv = clips["webm"].read_bytes().replace(b"webm", b"matroska"[:4], 1)
    assert sniff_video(mkv) is None  # an unknown DocType is not a video we send
    assert sniff_video(Path(CAT).read_bytes()) is None


def test_parsing_never_crashes_on_any_cut(clips) -> None:
    for name in ("mp4", "webm"):
        data = clips[name].read_bytes()
        for end in range(0, len(data), 7):
            with contextlib.suppress(VideoError):  # anything else fails the test
                read_video_info(data[:end])


# -- crafted headers: always a VideoError, never a crash ----------------------------------------

HUGE = b"\xff" * 200  # a 200-byte integer
CRAFTED = {
    "a 200-byte TimecodeScale": (
        crafted_webm(timescale=HUGE),
        "a 200-byte number where at most 8 bytes fit",
    ),
    "a 200-byte DefaultDuration": (
        crafted_webm(duration=None, default_duration=HUGE),
        "a 200-byte number where at most 8 bytes fit",
    ),
    "a 200-byte cluster Timecode": (
        crafted_webm(duration=None, cluster_timecode=HUGE),
        "a 200-byte number where at most 8 bytes fit",
    ),
    "a 2,000-byte PixelWidth": (
        crafted_webm(width=b"\x01" * 2000),
        "a 2,000-byte number where at most 8 bytes fit",
    ),
    "a NaN Duration": (
        crafted_webm(duration=struct.pack(">d", math.nan)),
        "its header says it lasts nan s, which no clip does",
    ),
    "a -inf Duration": (
        crafted_webm(duration=struct.pack(">d", -math.inf)),
        "its header says it lasts -inf s, which no clip does",
    ),
    "a +inf seconds from a huge scale": (
        crafted_webm(timescale=b"\xff" * 8, duration=struct.pack(">d", 1e300)),
        "its header says it lasts inf s, which no clip does",
    ),
    "a negative Duration": (
        crafted_webm(duration=struct.pack(">f", -5.0)),
        "its header says it lasts -0.005 s, which no clip does",
    ),
    "a negative block time": (
        crafted_webm(duration=None, block_time=-500),
        "its header says it lasts -0.25 s, which no clip does",
    ),
    "a 65,536-pixel width": (
        crafted_webm(width=(65_536).to_bytes(3, "big")),
        "its header gives a width over 65,535 pixels",
    ),
    "an MP4 of 1.8e19 s": (
        crafted_mp4(timescale=1, length=(1 << 64) - 2, version=1),
        "its header says it lasts 1.84e+19 s, which no clip does",
    ),
    "an MP4 of eight days": (
        crafted_mp4(timescale=1, length=8 * 24 * 3600),
        "its header says it lasts 6.91e+05 s, which no clip does",
    ),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_header_is_a_video_error_that_says_what(case: str) -> None:
    data, why = CRAFTED[case]
    container = "MP4" if case.startswith("an MP4") else "WebM"
    with pytest.raises(VideoError) as info:
        prepare_images(data)
    assert str(info.value) == f"the bytes object is a damaged {container} file ({why})"
    repr(info.value)  # a repr that raises would break tracebacks and tables


def test_the_crafted_helpers_make_believable_clips() -> None:
    (webm,) = prepare_images(crafted_webm())
    (live,) = prepare_images(crafted_webm(duration=None))
    (mp4,) = prepare_images(crafted_mp4())
    assert (webm.duration, webm.width, webm.height, live.duration, mp4.duration) == (
        2.0,
        64,
        48,
        2.0,
        2.0,
    )
    assert repr(webm) == "<PreparedVideo WebM video, 2.0 s, 64×48 px, 192 bytes from 'bytes'>"


def test_too_many_elements_are_refused_not_read() -> None:
    void = b"\xec\x80"  # an empty Void element: two bytes each
    many = crafted_webm() + ebml(0x18538067, void * (MAX_STEPS + 1))
    with pytest.raises(VideoError) as info:
        read_video_info(many, "'many.webm'")
    assert str(info.value) == (
        f"'many.webm' is a damaged WebM file (more than {MAX_STEPS:,} boxes or elements in "
        "its header)"
    )


def test_the_size_is_checked_before_the_header_is_read(monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MAX_VIDEO_MB", "0.001")
    data = crafted_webm() + b"\0" * 2000  # damaged too: the size is what is reported
    read: list[bytes] = []
    monkeypatch.setattr(video_module, "_scan", lambda *a: read.append(a[0]))
    with pytest.raises(VideoError) as info:
        prepare_images(data)
    assert str(info.value).startswith("the bytes object is 2,192 bytes, over the 1,048-byte limit")
    assert read == []


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """A real header with some bytes changed, some cut off or some repeated."""
    n = len(seed)
    edits = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), max_size=12)
    cut = st.integers(0, n)
    return st.builds(_mutate, st.just(seed), edits, cut, st.integers(0, 3))


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: int, repeat: int) -> bytes:
    data = bytearray(seed)
    for at, byte in edits:
        data[at] = byte
    return bytes(data[:cut]) * repeat + bytes(data[cut:]) if repeat else bytes(data[:cut])


SEEDS = {
    "MP4": crafted_mp4(),
    "MOV": b"\0\0\0\x14ftypqt  " + bytes(8) + crafted_mp4()[20:],
    "WebM": crafted_webm(),
    "live WebM": crafted_webm(duration=None),
    "MP4 v1": crafted_mp4(version=1),
}
MAGIC = [b"\x1a\x45\xdf\xa3", b"\0\0\0\x18ftypisom", b"\0\0\0\x08moov", b"\0\0\0\x14ftypqt  "]
HEADERS = st.one_of(
    *(_mutations(seed) for seed in SEEDS.values()),
    st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGIC), st.binary(max_size=600)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HEADERS)
def test_any_header_is_a_video_or_a_video_error_in_linear_work(data: bytes) -> None:
    """Random and mutated headers: a PreparedVideo or a VideoError, never another exception,
    and the reader visits at most four boxes or elements per byte (its nesting depth)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LongVideoWarning)  # a long clip is still a clip
            (video,) = prepare_images(data)
    except VideoError as exc:
        assert str(exc) and repr(exc)
    except ImageError as exc:  # not recognised as a video at all: an image error
        assert sniff_video(data) is None, exc
    else:
        assert isinstance(video, PreparedVideo) and repr(video) and video.summary()
        assert video.duration is None or 0 <= video.duration <= video_module.MAX_VIDEO_SECONDS
    container = sniff_video(data)
    if container in ("MP4", "MOV", "WebM"):
        try:
            _, steps = video_module._scan(data, container)
        except (ValueError, IndexError, struct.error):
            return  # a damaged header: read_video_info said so above
        assert steps <= 4 * len(data) + 4


def test_a_crafted_clip_fails_its_row_and_the_run_goes_on(env: OfflineServer, tmp_path) -> None:
    items = []
    for i in range(6):
        if i == 2:
            bad = tmp_path / "bad.webm"
            bad.write_bytes(CRAFTED["a 200-byte TimecodeScale"][0])
            items.append(str(bad))
        else:
            items.append(CAT)
    results = describe_many(items, "What?", show=False, cache=False)
    assert [r.ok for r in results] == [True, True, False, True, True, True]
    assert isinstance(results[2].error, VideoError)
    assert str(results[2].error) == (
        f"'{tmp_path / 'bad.webm'}' is a damaged WebM file (a 200-byte number where at most "
        "8 bytes fit)"
    )
    assert len(env.chat_requests()) == 5
    repr(results)


# -- inputs -----------------------------------------------------------------------------------


def test_a_path_a_data_url_and_an_https_url(clips) -> None:
    data = clips["mp4"].read_bytes()
    (video,) = prepare_images(str(clips["mp4"]))
    assert isinstance(video, PreparedVideo) and video.kind == "video"
    assert (
        repr(video)
        == f"<PreparedVideo MP4 video, 2.0 s, 64×48 px, {len(data):,} bytes from 'clip.mp4'>"
    )
    assert video.to_url() == "data:video/mp4;base64," + base64.b64encode(data).decode()
    (again,) = prepare_images("data:video/quicktime;base64," + base64.b64encode(data).decode())
    assert again.data == data and again.container == "MP4"  # the bytes decide, not the label
    (remote,) = prepare_images("https://example.com/clips/cat.MOV?sig=1")
    assert isinstance(remote, PreparedVideo) and remote.to_url().endswith("cat.MOV?sig=1")
    image, clip = prepare_images([CAT, clips["webm"]])
    assert (image.kind, clip.kind, clip.container) == ("image", "video", "WebM")


def test_a_long_clip_warns_and_is_still_sent(clips, server: OfflineServer) -> None:
    with pytest.warns(LongVideoWarning) as record:
        answer = ask(server, str(clips["long.mp4"]))
    assert str(record[0].message) == (
        f"'{clips['long.mp4']}' lasts 31.0 s: Reka answers best for videos under 30 s"
    )
    assert "Video 1: MP4, 31.0 s, 64×48 px," in answer


def test_an_oversized_clip_is_refused_unsent(clips, server: OfflineServer, monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MAX_VIDEO_MB", "0.001")
    size = clips["mp4"].stat().st_size
    with pytest.raises(VideoError) as info:
        ask(server, str(clips["mp4"]))
    assert str(info.value) == (
        f"'{clips['mp4']}' is {size:,} bytes, over the 1,048-byte limit for a video (set "
        "REKA_NB_MAX_VIDEO_MB to change it, or send a shorter or smaller clip)"
    )
    assert server.requests == []
    monkeypatch.setenv("REKA_NB_MAX_VIDEO_MB", "lots")
    with pytest.raises(VideoError, match="REKA_NB_MAX_VIDEO_MB must be a positive number"):
        prepare_images(str(clips["mp4"]))


# -- end to end ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["openai", "native"])
@pytest.mark.parametrize(("name", "container"), [("mp4", "MP4"), ("mov", "MOV"), ("webm", "WebM")])
def test_a_clip_answered_end_to_end(clips, server: OfflineServer, api, name, container) -> None:
    size = clips[name].stat().st_size
    answer = ask(server, str(clips[name]), api=api)
    assert answer.text == (
        "This is reka_nb's offline server: no model ran, so nothing here comes from watching the "
        f"videos. Model: reka-flash. Video 1: {container}, 2.0 s, 64×48 px, {size:,} bytes. "
        "Prompt: What happens?"
    )
    (request,) = server.requests
    part, text = request.body["messages"][-1]["content"]
    url = part["video_url"] if api == "native" else part["video_url"]["url"]
    assert part["type"] == "video_url" and text == {"type": "text", "text": "What happens?"}
    assert url.startswith(f"data:{answer.images[0].mime};base64,")


def test_the_server_says_what_it_could_not_measure(clips, server, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # as where PyAV is not installed
    size = clips["mp4"].stat().st_size
    answer = ask(server, str(clips["mp4"]))
    assert f"Video 1: MP4, {size:,} bytes (duration and pixel size not measured: PyAV is not " \
        "installed)." in answer  # fmt: skip


def test_the_server_refuses_a_video_it_cannot_read(server: OfflineServer) -> None:
    import httpx

    body = {
        "model": "reka-flash",
        "messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAAGGZ0eXBpc29t"}},
            {"type": "text", "text": "hi"}]}],
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {server.api_key}"}
    reply = httpx.post(server.base_url + "/chat/completions", json=body, headers=headers)
    assert reply.status_code == 400
    assert reply.json()["error"]["message"].startswith(
        "Video 1 of message 1 could not be decoded: the MP4 file could not be read"
    )


def test_the_waiting_state_shows_a_poster_or_a_placeholder(clips, monkeypatch) -> None:
    (video,) = prepare_images(str(clips["mp4"]))
    size = clips["mp4"].stat().st_size
    assert waiting_bundle("reka-flash", [video])["text/plain"] == "Asking reka-flash about 1 video…"
    strip = images_bundle([video])  # shown above the answer from the waiting state on
    assert strip["text/plain"] == f"[video 1: {video.source}]"
    assert '<img src="data:image/jpeg;base64,' in strip["text/html"]  # PyAV: the first frame
    monkeypatch.setitem(sys.modules, "av", None)
    strip = images_bundle([video])
    assert f"[▶ video 1: MP4 video, 2.0 s, 64×48 px, {size:,} bytes]" in strip["text/html"]
    assert "<img" not in strip["text/html"]


def test_magic_and_cli_take_a_clip(clips, env: OfflineServer, capsys) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "reka_nb")
    shell.run_cell(f"%reka -i {clips['webm']} What happens?", store_history=False)
    assert "Video 1: WebM, 2.0 s, 64×48 px," in capsys.readouterr().out
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    clean.update(REKA_BASE_URL=env.base_url, REKA_API_KEY=env.api_key)
    proc = subprocess.run(
        [sys.executable, "-m", "reka_nb", "describe", str(clips["mov"]), "-p", "What happens?"],
        env=clean, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Video 1: MOV, 2.0 s, 64×48 px," in proc.stdout


def test_a_video_to_a_text_only_model_is_refused_unsent(clips, env, monkeypatch) -> None:
    from reka_nb import InvalidRequestError

    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    with RekaClient() as client, pytest.raises(InvalidRequestError) as info:
        client.describe(str(clips["mp4"]), model="reka-flash-3", show=False)
    assert str(info.value).startswith("model 'reka-flash-3' does not take video input")
    assert [r.path for r in env.requests] == ["/v1/models"]


def test_a_kernel_shows_a_poster_then_without_pyav_a_placeholder(clips) -> None:
    import nbformat

    from reka_nb.testing import run_notebook

    size = clips["webm"].stat().st_size
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import reka_nb\nreka_nb.describe({str(clips['webm'])!r})"),
        nbformat.v4.new_code_cell("import sys\nsys.modules['av'] = None  # as without PyAV"),
        nbformat.v4.new_code_cell(f"reka_nb.describe({str(clips['webm'])!r})"),
    ]
    run_notebook(nb, ROOT)
    poster = nb.cells[0].outputs[0].data["text/html"]
    assert '<img src="data:image/jpeg;base64,' in poster
    assert f'title="video 1: WebM video, 2.0 s, 64×48 px, {size:,} bytes"' in poster
    placeholder = nb.cells[2].outputs[0].data["text/html"]
    assert "<img" not in placeholder
    assert f"[▶ video 1: WebM video, 2.0 s, 64×48 px, {size:,} bytes]" in placeholder
