"""Short videos: read from the bytes, checked before sending, answered end to end."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from _clips import make_clip

from reka_nb import (
    LongVideoWarning,
    PreparedVideo,
    RekaClient,
    VideoError,
    prepare_images,
)
from reka_nb.images import read_video_info
from reka_nb.images.video import sniff_video
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
