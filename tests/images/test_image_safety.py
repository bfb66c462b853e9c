"""Images the library must not read to exhaustion, paths it must refuse cleanly, limits checked
before anything is prepared, and metadata (EXIF with GPS, XMP, comments) that is not sent."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from reka_nb import ConfigurationError, ImageError, RekaClient, describe, prepare_image
from reka_nb.images import inputs
from reka_nb.testing import OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
GPS = {1: "N", 2: (48.0, 51.0, 29.0)}  # latitude of the Eiffel tower


def client_for(server: OfflineServer, **options: object) -> RekaClient:
    return RekaClient(base_url=server.base_url, api_key=server.api_key, **options)  # type: ignore[arg-type]


def photo(fmt: str, orientation: int = 6, **options: object) -> bytes:
    """A small photo with a camera name, a GPS position and an orientation in its EXIF."""
    img = Image.effect_mandelbrot((96, 64), (-2.0, -1.5, 1.0, 1.5), 60).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"
    exif[0x8825] = GPS
    buffer = io.BytesIO()
    img.save(buffer, fmt, exif=exif.tobytes(), **options)
    return buffer.getvalue()


def sent_image(server: OfflineServer) -> bytes:
    url = server.requests[-1].body["messages"][-1]["content"][0]["image_url"]["url"]
    return base64.b64decode(url.split(",", 1)[1])


def upright(data: bytes) -> bytes:
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data))).tobytes()


# -- files and paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_an_open_device_file_is_read_only_up_to_the_file_limit(
    server: OfflineServer, monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    monkeypatch.setattr(inputs, "MAX_FILE_BYTES", 8 * 1024 * 1024)  # the same limit as paths
    with client_for(server) as client, open(device, "rb") as file:
        started = time.monotonic()
        with pytest.raises(ImageError, match=rf"^file '{device}' holds more than the 8,388,608"):
            describe(file, client=client, show=False)
        assert time.monotonic() - started < 5
    assert server.requests == []


@pytest.mark.parametrize(
    ("path", "shown", "why"),
    [
        ("cat\0.jpeg", "'cat\\x00.jpeg'", "a NUL character"),
        ("cat\ud800.jpeg", "'cat\\ud800.jpeg'", "characters the file system cannot encode"),
    ],
)
def test_bad_path_strings_are_image_errors(
    server: OfflineServer, path: str, shown: str, why: str
) -> None:
    with client_for(server) as client, pytest.raises(ImageError) as info:
        describe(path, client=client, show=False)
    assert str(info.value) == f"{shown} is not a usable file path: it contains {why}"
    assert server.requests == []


# -- limits, checked first -------------------------------------------------------------------


def test_too_many_images_are_refused_before_any_is_read(server: OfflineServer) -> None:
    missing = [f"no-such-image-{i}.png" for i in range(100)]  # reading any would fail otherwise
    with client_for(server) as client, pytest.raises(ImageError) as info:
        describe(missing, client=client, show=False)
    assert str(info.value) == (
        "100 images in one message, over the limit of 6: send fewer (the limit is the "
        "max_images client option, or REKA_NB_MAX_IMAGES)"
    )
    assert server.requests == []


def test_the_image_limit_is_configurable(
    server: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client_for(server, max_images=2) as client:
        with pytest.raises(ImageError, match=r"^3 images in one message, over the limit of 2"):
            describe([CAT] * 3, client=client, show=False)
        monkeypatch.setenv("REKA_NB_MAX_IMAGES", "1")  # the argument wins over the variable
        describe([CAT] * 2, client=client, show=False)
        assert len(server.requests[-1].body["messages"][-1]["content"]) == 3  # 2 images, 1 text
    with client_for(server) as client:
        with pytest.raises(ImageError, match=r"^2 images in one message, over the limit of 1"):
            describe([CAT] * 2, client=client, show=False)
        monkeypatch.setenv("REKA_NB_MAX_IMAGES", "lots")
        with pytest.raises(ConfigurationError, match="REKA_NB_MAX_IMAGES must be a whole number"):
            describe(CAT, client=client, show=False)
    with pytest.raises(ConfigurationError, match="max_images must be a whole number above 0"):
        RekaClient(max_images=0)
    assert len(server.requests) == 1


def test_the_request_size_is_checked_image_by_image(server: OfflineServer) -> None:
    size = (CAT.stat().st_size + 2) // 3 * 4  # the cat as sent, in base64
    with client_for(server, max_request_bytes=size * 2 + 1) as client:
        with pytest.raises(ImageError, match=r"^image 3 of 3: no such file"):
            describe([CAT, CAT, "no-such-image.png"], client=client, show=False)  # within it
        with pytest.raises(ImageError) as info:
            describe([CAT, CAT, CAT, "no-such-image.png"], client=client, show=False)
        assert str(info.value).startswith(
            f"the first 3 of 4 images come to {size * 3:,} bytes as sent, over the limit of "
            f"{size * 2 + 1:,} bytes for one request"
        )
    assert server.requests == []


# -- metadata --------------------------------------------------------------------------------


def test_exif_and_gps_are_not_sent_but_the_orientation_is(server: OfflineServer) -> None:
    original = photo("JPEG", comment=b"taken at home")
    with client_for(server) as client:
        describe(original, client=client, show=False)
        sent = sent_image(server)
        assert b"SecretCam" not in sent and b"taken at home" not in sent
        exif = Image.open(io.BytesIO(sent)).getexif()
        assert dict(exif) == {0x0112: 6} and not exif.get_ifd(0x8825)
        assert upright(sent) == upright(original)  # the same pixels, the same way up
        assert sent[sent.index(b"\xff\xda") :] == original[original.index(b"\xff\xda") :]
        describe(original, client=client, show=False, keep_metadata=True)
        assert sent_image(server) == original


@pytest.mark.parametrize(
    ("fmt", "options"), [("PNG", {}), ("WEBP", {"lossless": True}), ("MPO", {})]
)
def test_metadata_goes_from_every_format_sent_as_given(fmt: str, options: dict) -> None:
    original = photo(fmt, **options)
    prepared = prepare_image(original)
    assert not prepared.converted and prepared.stripped == len(original) - len(prepared.data or b"")
    assert prepared.stripped > 0 and b"SecretCam" not in (prepared.data or b"")
    sent = Image.open(io.BytesIO(prepared.data or b""))
    assert dict(sent.getexif()) == {0x0112: 6}
    assert upright(prepared.data or b"") == upright(original)
    assert "bytes of metadata removed" in repr(prepared)
    assert prepare_image(original, keep_metadata=True).data == original


def test_gif_comments_go_and_the_loop_stays() -> None:
    frames = [Image.linear_gradient("L").rotate(90 * i).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], loop=0, comment=b"GPS")
    original = buffer.getvalue()
    data = prepare_image(original).data or b""
    assert b"GPS" not in data and b"NETSCAPE2.0" in data
    assert Image.open(io.BytesIO(data)).n_frames == 3


def test_the_cli_refuses_too_many_images_before_reading_any() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    missing = [f"no-such-image-{i}.png" for i in range(30)]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "reka_nb", "describe", *missing, "--offline"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        "reka-nb: error: 30 images in one message, over the limit of 6: send fewer (the limit "
        "is the max_images client option, or REKA_NB_MAX_IMAGES)\n"
    )
    assert time.monotonic() - started < 30
    env["REKA_NB_MAX_IMAGES"] = "2"
    proc = subprocess.run(
        [sys.executable, "-m", "reka_nb", "describe", str(CAT), str(CAT), str(CAT), "--offline"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "3 images in one message, over the limit of 2" in proc.stderr


def test_the_openai_style_client_checks_the_image_count_first(server: OfflineServer) -> None:
    from reka_nb import Client
    from reka_nb.compat import Reka

    missing = [f"no-such-image-{i}.png" for i in range(4)]
    refused = pytest.raises(ImageError, match=r"^7 images in one message, over the limit of 6")
    client = Client(provider=Reka, base_url=server.base_url, api_key=server.api_key)
    with client, refused:
        client.chat.completions.create(
            model="reka-flash",
            messages=[{"role": "user", "content": "What differs?"}],
            image=[CAT] * 3,
            images=missing,
        )
    assert server.requests == []
