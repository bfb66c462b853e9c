"""prepare_image: every input kind, the pass-through and downscale rules, and bad inputs."""

from __future__ import annotations

import base64
import io
import os
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import ipywidgets
import matplotlib
import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from reka_nb._exceptions import ImageError, RekaError
from reka_nb.images import (
    MAX_BYTES,
    MAX_SIDE,
    THUMBNAIL_SIDE,
    PreparedImage,
    prepare_image,
    prepare_images,
    shorten_data_urls,
)
from reka_nb.testing import OfflineServer

matplotlib.use("Agg")
from matplotlib.figure import Figure

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
CAT_BYTES = CAT.read_bytes()


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def decode(data: bytes | None) -> Image.Image:
    assert data is not None
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + body))
    return struct.pack(">I", len(body)) + kind + body + crc


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    with Image.open(CAT) as img:
        img.load()
        return img


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory, cat: Image.Image) -> Path:
    """A 12 MP (4000x3000) JPEG named .png: the name must not decide the format."""
    path = tmp_path_factory.mktemp("big") / "photo.png"
    path.write_bytes(encode(cat.resize((4000, 3000)), "JPEG", quality=95))
    return path


def graphic(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Flat-coloured shapes: a diagram, not a photo."""
    img = Image.new(mode, size, "white")
    w, h = size
    img.paste((200, 30, 30) if mode == "RGB" else (200, 30, 30, 255), (0, 0, w // 2, h // 2))
    img.paste((30, 30, 200) if mode == "RGB" else (30, 30, 200, 255), (w // 2, h // 2, w, h))
    return img


# -- the cat, as given --------------------------------------------------------------------


def test_cat_path_is_sent_byte_identical() -> None:
    prepared = prepare_image(str(CAT))
    assert prepared.data == CAT_BYTES
    assert (prepared.url, prepared.mime, prepared.format) == (None, "image/jpeg", "JPEG")
    assert (prepared.width, prepared.height) == (451, 300)
    assert (prepared.source, prepared.original_size, prepared.converted) == (
        "cat.jpeg",
        35042,
        False,
    )
    assert repr(prepared) == "<PreparedImage JPEG 451x300 35,042 bytes from 'cat.jpeg'>"
    assert str(prepared) == repr(prepared)


def test_to_url_is_a_base64_data_url_of_the_bytes() -> None:
    url = prepare_image(CAT).to_url()
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :]) == CAT_BYTES


def test_image_error_is_a_reka_error_and_a_value_error() -> None:
    with pytest.raises(RekaError):
        prepare_image(b"")
    with pytest.raises(ValueError, match="is empty"):
        prepare_image(b"")


# -- every input kind ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "source", "original_size"),
    [
        (lambda: CAT, "cat.jpeg", 35042),
        (lambda: str(CAT), "cat.jpeg", 35042),
        (lambda: CAT_BYTES, "bytes", 35042),
        (lambda: bytearray(CAT_BYTES), "bytes", 35042),
        (lambda: memoryview(CAT_BYTES), "bytes", 35042),
        (lambda: io.BytesIO(CAT_BYTES), "file object", 35042),
        (
            lambda: "data:image/jpeg;base64," + base64.b64encode(CAT_BYTES).decode(),
            "data URL",
            35042,
        ),
        (
            lambda: {
                "name": "cat.png",
                "type": "image/png",
                "size": 35042,
                "content": memoryview(CAT_BYTES),
            },
            "upload 'cat.png'",
            35042,
        ),
    ],
    ids=["Path", "str", "bytes", "bytearray", "memoryview", "BytesIO", "data URL", "upload dict"],
)
def test_encoded_inputs_pass_through(
    make: Callable[[], object], source: str, original_size: int
) -> None:
    prepared = prepare_image(make())
    assert prepared.data == CAT_BYTES
    assert prepared.mime == "image/jpeg"  # the upload said image/png: the bytes decide
    assert prepared.source == source
    assert prepared.original_size == original_size
    assert prepared.converted is False


def test_open_binary_file_uses_its_base_name() -> None:
    with open(CAT, "rb") as file:
        prepared = prepare_image(file)
    assert prepared.source == "cat.jpeg"
    assert prepared.data == CAT_BYTES


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "kitten.jpeg").write_bytes(CAT_BYTES)
    prepared = prepare_image("~/kitten.jpeg")
    assert (prepared.source, prepared.data) == ("kitten.jpeg", CAT_BYTES)


def test_data_url_without_padding_or_with_url_safe_alphabet() -> None:
    payload = base64.urlsafe_b64encode(CAT_BYTES).decode().rstrip("=")
    assert prepare_image(f"data:image/jpeg;base64,{payload}").data == CAT_BYTES


def test_remote_url_is_sent_as_is_and_its_query_never_shown() -> None:
    url = "https://example.com/cats/cat.jpeg?token=s3cr3t"
    prepared = prepare_image(url)
    assert (prepared.url, prepared.data, prepared.mime, prepared.format) == (url, None, None, None)
    assert (prepared.source, prepared.original_size, prepared.converted) == ("URL", None, False)
    assert prepared.to_url() == url
    assert prepared.thumbnail() is None
    assert repr(prepared) == "<PreparedImage URL 'https://example.com/cats/cat.jpeg?…'>"


def test_pil_image_from_a_jpeg_is_encoded_as_jpeg(cat: Image.Image) -> None:
    prepared = prepare_image(cat)
    assert (prepared.format, prepared.mime, prepared.width, prepared.height) == (
        "JPEG",
        "image/jpeg",
        451,
        300,
    )
    assert (prepared.source, prepared.original_size, prepared.converted) == (
        "PIL image",
        None,
        False,
    )
    assert decode(prepared.data).size == (451, 300)


def test_pil_image_with_alpha_stays_png_and_is_not_modified() -> None:
    img = graphic((300, 200), "RGBA")
    img.putpixel((0, 0), (0, 0, 0, 0))
    before = img.tobytes()
    prepared = prepare_image(img)
    assert (prepared.format, prepared.mime) == ("PNG", "image/png")
    assert decode(prepared.data).mode == "RGBA"
    assert decode(prepared.data).getpixel((0, 0)) == (0, 0, 0, 0)
    assert img.tobytes() == before


@pytest.mark.parametrize(
    ("array", "fmt", "mode"),
    [
        (np.full((40, 60), 128, np.uint8), "PNG", "L"),
        (np.zeros((40, 60, 3), np.uint8), "PNG", "RGB"),
        (
            np.dstack([np.zeros((40, 60, 3), np.uint8), np.full((40, 60), 100, np.uint8)]),
            "PNG",
            "RGBA",
        ),
        (np.zeros((40, 120, 3), np.uint8)[:, ::2], "PNG", "RGB"),  # not contiguous
    ],
    ids=["HxW", "HxWx3", "HxWx4", "strided"],
)
def test_numpy_arrays(array: np.ndarray, fmt: str, mode: str) -> None:
    prepared = prepare_image(array)
    assert (prepared.format, prepared.width, prepared.height) == (fmt, 60, 40)
    assert (prepared.source, prepared.original_size) == ("numpy array", array.nbytes)
    assert decode(prepared.data).mode == mode
    assert np.array_equal(np.asarray(decode(prepared.data)), array)


def test_numpy_photo_becomes_jpeg(cat: Image.Image) -> None:
    prepared = prepare_image(np.asarray(cat))
    assert (prepared.format, prepared.width, prepared.height) == ("JPEG", 451, 300)


def test_matplotlib_figure_is_a_png() -> None:
    figure = Figure(figsize=(4, 3))
    figure.add_subplot().plot([0, 1, 2], [2, 0, 1])
    prepared = prepare_image(figure)
    assert (prepared.format, prepared.mime, prepared.source) == (
        "PNG",
        "image/png",
        "matplotlib figure",
    )
    assert (prepared.original_size, prepared.converted) == (None, False)
    assert decode(prepared.data).size == (prepared.width, prepared.height)
    assert 300 <= prepared.width <= 400 and 200 <= prepared.height <= 300  # 4x3 in, 100 dpi


def upload_widget(*names: str) -> ipywidgets.FileUpload:
    widget = ipywidgets.FileUpload(accept="image/*", multiple=True)
    files = [
        {
            "name": name,
            "type": "image/jpeg",
            "size": 35042,
            "content": memoryview(CAT_BYTES),
            "last_modified": 0,
        }
        for name in names
    ]
    widget.set_state({"value": files})
    return widget


def test_upload_widget_and_its_value_give_one_image_per_file() -> None:
    widget = upload_widget("a.jpeg", "b.jpeg")
    for given in (widget, widget.value):
        prepared = prepare_images(given)
        assert [p.source for p in prepared] == ["upload 'a.jpeg'", "upload 'b.jpeg'"]
        assert all(p.data == CAT_BYTES for p in prepared)
    assert prepare_image(upload_widget("only.jpeg")).source == "upload 'only.jpeg'"


def test_prepare_images_takes_one_input_or_a_mixed_list(cat: Image.Image) -> None:
    assert [p.source for p in prepare_images(CAT)] == ["cat.jpeg"]
    mixed = prepare_images([CAT, CAT_BYTES, cat, "https://example.com/x.png"])
    assert [p.source for p in mixed] == ["cat.jpeg", "bytes", "PIL image", "URL"]
    assert [p.source for p in prepare_images((CAT, upload_widget("u.jpeg")))] == [
        "cat.jpeg",
        "upload 'u.jpeg'",
    ]


def test_prepare_images_names_the_bad_item() -> None:
    with pytest.raises(ImageError, match=r"^image 2 of 3: the bytes object is empty \(0 bytes\)$"):
        prepare_images([CAT, b"", CAT])


# -- pass-through, downscale, conversion -----------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime", "options"),
    [
        ("JPEG", "image/jpeg", {"quality": 90}),
        ("PNG", "image/png", {}),
        ("WEBP", "image/webp", {"quality": 80}),
        ("GIF", "image/gif", {}),
    ],
)
def test_sendable_formats_within_limits_are_byte_identical(
    tmp_path: Path, cat: Image.Image, fmt: str, mime: str, options: dict
) -> None:
    data = encode(cat, fmt, **options)
    path = tmp_path / "picture.bin"
    path.write_bytes(data)
    prepared = prepare_image(path)
    assert prepared.data == data
    assert (prepared.format, prepared.mime, prepared.converted) == (fmt, mime, False)
    assert (prepared.width, prepared.height, prepared.original_size) == (451, 300, len(data))


def test_format_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    path = tmp_path / "really-a-jpeg.png"
    path.write_bytes(CAT_BYTES)
    prepared = prepare_image(path)
    assert (prepared.mime, prepared.format, prepared.data) == ("image/jpeg", "JPEG", CAT_BYTES)


def test_animated_gif_within_limits_is_byte_identical() -> None:
    frames = [Image.new("P", (50, 40), i) for i in range(3)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert prepare_image(data).data == data


def test_12_megapixel_jpeg_is_downscaled_to_2048(big_jpeg: Path) -> None:
    prepared = prepare_image(big_jpeg)
    assert (prepared.width, prepared.height) == (MAX_SIDE, 1536)
    assert (prepared.format, prepared.mime, prepared.converted) == ("JPEG", "image/jpeg", True)
    assert prepared.original_size == big_jpeg.stat().st_size
    assert prepared.source == "photo.png"
    assert decode(prepared.data).format == "JPEG"
    assert decode(prepared.data).size == (2048, 1536)
    assert len(prepared.data or b"") < prepared.original_size / 6
    assert repr(prepared) == (
        f"<PreparedImage JPEG 2048x1536 {len(prepared.data or b''):,} bytes from 'photo.png' "
        f"(re-encoded from {prepared.original_size:,} bytes)>"
    )


@pytest.fixture
def jpeg_loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The pixel size of every JPEG decode that happens during the test."""
    sizes: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def load(self: JpegImagePlugin.JpegImageFile):  # type: ignore[no-untyped-def]
        sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    return sizes


def test_big_jpeg_is_never_decoded_at_full_size(
    big_jpeg: Path, jpeg_loads: list[tuple[int, int]]
) -> None:
    prepare_image(big_jpeg)
    assert set(jpeg_loads) == {(2000, 1500)}  # the DCT half scale, then scaled up 2.4%


def test_jpeg_within_limits_is_checked_at_one_eighth_scale(
    jpeg_loads: list[tuple[int, int]],
) -> None:
    prepare_image(CAT)
    assert set(jpeg_loads) == {(57, 38)}


def test_exif_orientation_is_applied_when_re_encoding(cat: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    big = encode(cat.resize((3000, 2000)), "JPEG", quality=90, exif=exif.tobytes())
    prepared = prepare_image(big)
    assert (prepared.width, prepared.height) == (1365, 2048)
    assert decode(prepared.data).size == (1365, 2048)
    assert decode(prepared.data).getexif().get(0x0112) is None


def test_exif_is_kept_as_is_when_passing_through(cat: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(cat, "JPEG", quality=90, exif=exif.tobytes())
    prepared = prepare_image(data)
    assert prepared.data == data
    assert (prepared.width, prepared.height) == (300, 451)  # as displayed


def test_over_max_bytes_lowers_quality_before_size(cat: Image.Image) -> None:
    data = encode(cat, "JPEG", quality=100)
    prepared = prepare_image(data, max_bytes=40_000)
    assert len(data) > 40_000
    assert len(prepared.data or b"") <= 40_000
    assert (prepared.width, prepared.height, prepared.converted) == (451, 300, True)


def test_over_max_bytes_shrinks_when_quality_is_not_enough() -> None:
    prepared = prepare_image(CAT, max_bytes=3_000)
    assert len(prepared.data or b"") <= 3_000
    assert (prepared.width, prepared.height) == (189, 126)  # 451 x 0.75 x 0.75 x 0.75
    assert decode(prepared.data).size == (189, 126)


def test_max_side_argument(cat: Image.Image) -> None:
    prepared = prepare_image(CAT, max_side=100)
    assert (prepared.width, prepared.height, prepared.format) == (100, 67, "JPEG")
    prepared = prepare_image(cat, max_side=100)
    assert (prepared.width, prepared.height, prepared.converted) == (100, 67, True)


@pytest.mark.parametrize(
    ("size", "mode", "expected_fmt", "expected_mode"),
    [
        ((3000, 1000), "RGBA", "PNG", "RGBA"),  # some pixels see-through
        ((3000, 1000), "RGB", "PNG", "RGB"),  # flat colours: a diagram
    ],
)
def test_big_png_graphics_stay_png(
    size: tuple[int, int], mode: str, expected_fmt: str, expected_mode: str
) -> None:
    img = graphic(size, mode)
    if mode == "RGBA":
        img.paste((0, 0, 0, 0), (0, 0, 10, 10))
    prepared = prepare_image(encode(img, "PNG"))
    assert (prepared.format, prepared.width, prepared.height) == (expected_fmt, 2048, 683)
    assert decode(prepared.data).mode == expected_mode


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_big_png_photo_becomes_jpeg(cat: Image.Image, mode: str) -> None:
    prepared = prepare_image(
        encode(cat.resize((3000, 1996)).convert(mode), "PNG", compress_level=1)
    )
    assert (prepared.format, prepared.mime) == ("JPEG", "image/jpeg")  # opaque RGBA: no alpha
    assert (prepared.width, prepared.height) == (2048, 1363)


def test_big_animated_gif_sends_its_first_frame() -> None:
    frames = [Image.new("RGB", (3000, 100), colour) for colour in ("red", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    prepared = prepare_image(data)
    assert (prepared.format, prepared.width, prepared.height) == ("PNG", 2048, 68)
    assert decode(prepared.data).convert("RGB").getpixel((5, 5)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("make", "fmt", "expected"),
    [
        (lambda cat: cat, "BMP", "JPEG"),
        (lambda cat: cat, "TIFF", "JPEG"),
        (lambda cat: cat, "PPM", "JPEG"),
        (lambda cat: cat.resize((64, 64)), "ICO", "PNG"),
        (lambda cat: graphic((400, 300)), "BMP", "PNG"),
        (lambda cat: cat.convert("RGBA"), "TIFF", "JPEG"),  # alpha channel, all opaque
        (lambda cat: graphic((400, 300), "RGBA").rotate(10), "TIFF", "PNG"),  # see-through corners
        (lambda cat: cat.convert("L"), "TIFF", "PNG"),
    ],
    ids=["BMP", "TIFF", "PPM", "ICO", "BMP-graphic", "TIFF-opaque-RGBA", "TIFF-alpha", "TIFF-L"],
)
def test_other_formats_are_converted(
    cat: Image.Image, make: Callable[[Image.Image], Image.Image], fmt: str, expected: str
) -> None:
    img = make(cat)
    data = encode(img, fmt)
    prepared = prepare_image(data)
    assert (prepared.format, prepared.converted, prepared.original_size) == (
        expected,
        True,
        len(data),
    )
    assert (prepared.width, prepared.height) == img.size
    assert decode(prepared.data).format == expected


def test_palette_png_with_transparency_over_limits_keeps_alpha() -> None:
    img = Image.new("P", (2500, 100), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(0, (0, 0, 100, 100))
    data = encode(img, "PNG", transparency=0)
    prepared = prepare_image(data)
    assert (prepared.format, prepared.width, prepared.height) == ("PNG", 2048, 82)
    assert decode(prepared.data).mode == "RGBA"
    assert decode(prepared.data).getpixel((0, 0))[3] == 0


def test_16_bit_grey_png_over_limits_stays_16_bit() -> None:
    data = encode(Image.new("I;16", (3000, 100), 40000), "PNG")
    prepared = prepare_image(data)
    assert decode(prepared.data).mode == "I;16"
    assert decode(prepared.data).getpixel((10, 10)) == 40000


# -- thumbnails, reprs, printed text ----------------------------------------------------------


def test_thumbnail(big_jpeg: Path) -> None:
    small = prepare_image(CAT)
    data, mime = small.thumbnail(max_side=500) or (b"", "")
    assert (mime, decode(data).size) == ("image/jpeg", (451, 300))  # re-encoded, not the file
    assert data != CAT_BYTES
    data, mime = small.thumbnail() or (b"", "")
    assert (mime, decode(data).size) == ("image/jpeg", (THUMBNAIL_SIDE, 170))
    rgba = graphic((1000, 500), "RGBA").rotate(5)
    data, mime = prepare_image(rgba).thumbnail() or (b"", "")
    assert (mime, decode(data).size, decode(data).mode) == ("image/png", (256, 128), "RGBA")


@pytest.mark.parametrize("make", [lambda: CAT, lambda: np.zeros((5, 5), np.uint8)])
def test_reprs_never_hold_bytes_or_base64(make: Callable[[], object]) -> None:
    prepared = prepare_image(make())
    text = repr(prepared)
    assert "b'" not in text and "base64" not in text
    assert prepared.to_url()[23:40] not in text
    assert len(text) < 120


def test_shorten_data_urls() -> None:
    url = prepare_image(CAT).to_url()
    body = f'{{"image_url": {{"url": "{url}"}}, "b": "data:image/png;base64,iVBORw0KGgo="}}'
    assert shorten_data_urls(body) == (
        '{"image_url": {"url": "data:image/jpeg;base64,…(35,042 bytes)"}, '
        '"b": "data:image/png;base64,…(8 bytes)"}'
    )
    assert shorten_data_urls("no urls, data: here") == "no urls, data: here"
    assert shorten_data_urls(f"a {url} b {url}") == (
        "a data:image/jpeg;base64,…(35,042 bytes) b data:image/jpeg;base64,…(35,042 bytes)"
    )


def test_pillow_warnings_do_not_leak_and_filters_are_restored(cat: Image.Image) -> None:
    corrupt_exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12"  # cut short
    small = encode(cat, "JPEG", exif=corrupt_exif)
    big = encode(cat.resize((2500, 1663)), "JPEG", exif=corrupt_exif)
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert prepare_image(small).data == small
        assert prepare_image(big).width == 2048
        assert caught == []
        Image.open(io.BytesIO(small)).getexif()  # Pillow itself does warn about this EXIF
    assert [str(w.message).strip() for w in caught] == [
        "Corrupt EXIF data.  Expecting to read 12 bytes but only got 2."
    ]
    assert warnings.filters == before


def test_module_import_stays_light() -> None:
    code = (
        "import sys, reka_nb.images; heavy = ('numpy', 'matplotlib', 'IPython', 'ipywidgets'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    root = str(CAT.parent.parent.parent)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert result.stdout == "[]\n"


def test_limits() -> None:
    assert (MAX_SIDE, MAX_BYTES, THUMBNAIL_SIDE) == (2048, 4 * 1024 * 1024, 256)
    assert PreparedImage.__dataclass_params__.frozen  # type: ignore[attr-defined]


# -- bad inputs -------------------------------------------------------------------------------


def truncated(fmt: str) -> Callable[[Path], object]:
    def make(tmp_path: Path) -> object:
        with Image.open(CAT) as img:
            data = encode(img, fmt)
        path = tmp_path / f"cut.{fmt.lower()}"
        path.write_bytes(data[: len(data) // 2])
        return path

    return make


def write(name: str, data: bytes) -> Callable[[Path], object]:
    def make(tmp_path: Path) -> object:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


def truncated_big_jpeg(tmp_path: Path) -> object:
    with Image.open(CAT) as img:
        data = encode(img.resize((3000, 2000)), "JPEG")
    path = tmp_path / "big.jpeg"
    path.write_bytes(data[: len(data) // 2])
    return path


def exhausted_file(tmp_path: Path) -> object:
    file = io.BytesIO(CAT_BYTES)
    file.read()
    return file


def text_file(tmp_path: Path) -> object:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    return open(path)  # closed by test_bad_inputs


def closed_file(tmp_path: Path) -> object:
    file = open(CAT, "rb")  # noqa: SIM115
    file.close()
    return file


class ReadsNumbers:
    def read(self) -> int:
        return 7


BAD_INPUTS: list[tuple[str, Callable[[Path], object], str]] = [
    (
        "missing file",
        lambda p: p / "missing.jpeg",
        r"^no such file: '.*/missing\.jpeg' \(current directory: ",
    ),
    (
        "missing relative",
        lambda p: "nowhere/cat.jpeg",
        r"^no such file: 'nowhere/cat\.jpeg' \(current directory: /",
    ),
    (
        "missing in the home folder",
        lambda p: "~/nowhere/cat.jpeg",
        r"^no such file: '~/nowhere/cat\.jpeg' \(expanded to '/[^~']*/nowhere/cat\.jpeg'\) ",
    ),
    ("directory", lambda p: p, r"is a directory, not an image file$"),
    ("empty file", write("empty.jpeg", b""), r"'.*/empty\.jpeg' is empty \(0 bytes\)$"),
    ("empty bytes", lambda p: b"", r"^the bytes object is empty \(0 bytes\)$"),
    ("empty memoryview", lambda p: memoryview(b""), r"^the memoryview object is empty"),
    (
        "text file",
        write("notes.txt", b"just some words\n"),
        r"notes\.txt' is not an image file \(JPEG, PNG, GIF, WebP and other common "
        r"formats can be used\)$",
    ),
    (
        "not an image",
        lambda p: b"%PDF-1.4 hello",
        r"^the bytes object is not an image file \(JPEG, PNG, GIF, WebP and other common "
        r"formats can be used\)$",
    ),
    (
        "truncated JPEG",
        truncated("JPEG"),
        r"cut\.jpeg' is truncated or corrupt \(image file is truncated",
    ),
    ("truncated PNG", truncated("PNG"), r"cut\.png' is truncated or corrupt"),
    ("truncated GIF", truncated("GIF"), r"cut\.gif' is truncated or corrupt"),
    ("truncated WebP", truncated("WEBP"), r"cut\.webp' is truncated or corrupt"),
    ("truncated big JPEG", truncated_big_jpeg, r"big\.jpeg' is truncated or corrupt"),
    (
        "bomb",
        lambda p: png_claiming(30000, 30000),
        r"has 900,000,000 pixels, over the limit of 89,478,485",
    ),
    (
        "bomb warning",
        lambda p: png_claiming(10000, 10000),
        r"has 100,000,000 pixels, over the limit",
    ),
    (
        "None",
        lambda p: None,
        r"^unsupported type NoneType: pass a path, URL, bytes, an open binary file, a PIL image, "
        r"a numpy array or a matplotlib figure$",
    ),
    ("int", lambda p: 42, r"^unsupported type int: pass a path"),
    ("plain dict", lambda p: {"name": "x"}, r"^unsupported type dict: "),
    (
        "float array",
        lambda p: np.zeros((4, 4, 3)),
        r"^numpy array has dtype float64 \(shape \(4, 4, 3\)\); "
        r"accepted: dtype uint8 with shape \(H, W\), \(H, W, 3\) or \(H, W, 4\)$",
    ),
    ("bool array", lambda p: np.zeros((4, 4), bool), r"^numpy array has dtype bool "),
    ("int16 array", lambda p: np.zeros((4, 4), np.int16), r"^numpy array has dtype int16 "),
    (
        "2 channels",
        lambda p: np.zeros((4, 4, 2), np.uint8),
        r"^numpy array has shape \(4, 4, 2\); accepted",
    ),
    ("1-D array", lambda p: np.zeros(16, np.uint8), r"^numpy array has shape \(16,\); accepted"),
    (
        "4-D array",
        lambda p: np.zeros((1, 4, 4, 3), np.uint8),
        r"^numpy array has shape \(1, 4, 4, 3\)",
    ),
    (
        "empty array",
        lambda p: np.zeros((0, 4), np.uint8),
        r"^numpy array has no pixels \(shape \(0, 4\)\)$",
    ),
    ("0x0 PIL image", lambda p: Image.new("RGB", (0, 0)), r"^the PIL image has no pixels \(0x0\)$"),
    ("empty list", lambda p: [], r"^no images given: the list is empty$"),
    ("empty tuple", lambda p: (), r"^no images given: the tuple is empty$"),
    ("nested list", lambda p: [[CAT]], r"^nested lists are not accepted"),
    (
        "two for one",
        lambda p: [CAT, CAT],
        r"^prepare_image takes one image but got 2: use prepare_images",
    ),
    (
        "empty upload widget",
        lambda p: ipywidgets.FileUpload(),
        r"^the upload widget holds no files yet",
    ),
    (
        "upload of text",
        lambda p: {"name": "a.png", "content": "text"},
        r"^upload 'a\.png' has content of type str, not bytes$",
    ),
    (
        "upload not image",
        lambda p: {"name": "a.png", "content": b"hi"},
        r"^upload 'a\.png' is not an image file \(JPEG, PNG, GIF, WebP and other common "
        r"formats can be used\)$",
    ),
    ("bad base64", lambda p: "data:image/png;base64,@@@@", r"^the data URL has invalid base64 \("),
    (
        "base64 length",
        lambda p: "data:image/png;base64,abcde",
        r"^the data URL has invalid base64 \(",
    ),
    (
        "text data URL",
        lambda p: "data:text/plain;base64,aGVsbG8=",
        r"^the data URL has type 'text/plain', not an image type",
    ),
    ("data URL no comma", lambda p: "data:image/png", r"^the data URL has no ','"),
    (
        "data URL not image",
        lambda p: "data:image/png;base64,aGVsbG8=",
        r"^the data URL is not an image file \(JPEG, PNG, GIF, WebP and other common "
        r"formats can be used\)$",
    ),
    ("URL no host", lambda p: "https://", r"^URL 'https://' has no host$"),
    (
        "plain http URL",
        lambda p: "http://example.com/cat.jpeg",
        r"^plain http:// image URL 'http://example\.com/cat\.jpeg': Reka fetches only https:// "
        r"URLs, so send an https:// URL \(or download the image and pass its path\)$",
    ),
    ("URL empty host", lambda p: "https:///cat.jpeg", r"^URL 'https:///cat\.jpeg' has no host$"),
    (
        "URL with space",
        lambda p: "https://example.com/a cat.jpeg",
        r"contains whitespace: percent-encode it",
    ),
    ("URL bad port", lambda p: "https://example.com:99999/c.jpeg", r"has an invalid port$"),
    (
        "ftp URL",
        lambda p: "ftp://example.com/cat.jpeg",
        r"^unsupported URL scheme 'ftp' in 'ftp://example\.com/cat\.jpeg': "
        r"pass an https:// URL, a data: URL or a local path$",
    ),
    (
        "file URL",
        lambda p: "file:///tmp/cat.jpeg",
        r"^unsupported URL scheme 'file' .*\(for a local file, its path without file://\)$",
    ),
    (
        "empty string",
        lambda p: "",
        r"^empty path: pass a file path, an https:// URL or a data: URL$",
    ),
    (
        "text-mode file",
        text_file,
        r"notes\.txt' is open in text mode: open it in binary mode, open\(path, 'rb'\)$",
    ),
    ("closed file", closed_file, r"cat\.jpeg' is closed: open it again"),
    (
        "read file",
        exhausted_file,
        r"^the file object has nothing left to read \(at position 35,042\): "
        r"call \.seek\(0\) first$",
    ),
    (
        "read returns int",
        lambda p: ReadsNumbers(),
        r"^the file object\.read\(\) returned int, not bytes$",
    ),
]


@pytest.mark.parametrize(
    ("make", "message"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_inputs(tmp_path: Path, make: Callable[[Path], object], message: str) -> None:
    given = make(tmp_path)
    try:
        with pytest.raises(ImageError, match=message):
            prepare_image(given)
    finally:
        if hasattr(given, "close"):
            given.close()


def test_missing_file_names_the_working_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as caught:
        prepare_image("missing.jpeg")
    assert str(caught.value) == f"no such file: 'missing.jpeg' (current directory: {os.getcwd()})"


def test_bomb_limit_follows_pillow_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # the cat is 135,300 pixels
    with pytest.raises(ImageError, match=r"has 135,300 pixels, over the limit of 100,000 "):
        prepare_image(CAT)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # over twice the limit: an error
    with pytest.raises(ImageError, match=r"^'.*cat\.jpeg' has 135,300 pixels, over the limit"):
        prepare_image(str(CAT))


def test_max_bytes_too_small_to_reach() -> None:
    with pytest.raises(
        ImageError, match=r"^'.*cat\.jpeg' does not fit in 100 bytes even at 32x21$"
    ):
        prepare_image(str(CAT), max_bytes=100)


@pytest.mark.parametrize(
    ("make", "message"),
    [c[1:] for c in BAD_INPUTS if c[0] not in ("None", "two for one")],
    ids=[c[0] for c in BAD_INPUTS if c[0] not in ("None", "two for one")],
)
def test_bad_inputs_through_describe_send_nothing(
    tmp_path: Path, make: Callable[[Path], object], message: str, env: OfflineServer
) -> None:
    from reka_nb import describe

    given = make(tmp_path)
    try:
        with pytest.raises(ImageError, match=message.lstrip("^")):
            describe(given, show=False)
    finally:
        if hasattr(given, "close"):
            given.close()
    assert env.requests == []


def test_describe_needs_an_image(env: OfflineServer) -> None:
    from reka_nb import describe

    with pytest.raises(ImageError, match=r"^describe\(\) needs an image: pass a path, URL"):
        describe(None, show=False)
    assert env.requests == []


def test_thumbnail_drops_metadata_even_when_small() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPSInfo: latitude
    buffer = io.BytesIO()
    Image.new("RGB", (200, 150), "orange").save(buffer, "JPEG", exif=exif)
    original = buffer.getvalue()
    assert b"SecretCam" in original
    prepared = prepare_image(original, keep_metadata=True)
    assert prepared.data == original  # what is sent is untouched when asked...
    data, mime = prepared.thumbnail() or (b"", "")
    assert mime == "image/jpeg" and decode(data).size == (200, 150)
    assert b"SecretCam" not in data  # ...but what is shown carries no metadata
    assert not decode(data).getexif()


def test_device_files_and_huge_files_are_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reka_nb.images import inputs as images

    with pytest.raises(ImageError, match=r"^'/dev/zero' is not a regular file"):
        prepare_image("/dev/zero")
    big = tmp_path / "big.jpeg"
    big.write_bytes(CAT_BYTES)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ImageError, match=r"is 35,042 bytes, over the 1,000 bytes an image file"):
        prepare_image(big)
