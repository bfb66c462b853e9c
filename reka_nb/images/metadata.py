"""Metadata removed from image bytes without touching their pixels (no Pillow, no re-encoding).

An image sent as it was given keeps its compressed pixel data byte for byte, but loses what
describes the photo rather than shows it: EXIF (camera, time, GPS position), XMP, IPTC,
comments and embedded thumbnails. What is needed to see the picture as taken stays: colour
profiles (ICC), JFIF and Adobe colour markers, transparency, animation, and the EXIF
orientation, which is kept alone in a minimal EXIF block so viewers (and the model) still
see the picture upright.

``strip_metadata(data, format)`` returns the new bytes (the same object when there was
nothing to remove). A structure it does not understand is left as it is, never guessed at.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["orientation_exif", "strip_metadata"]

_ORIENTATION = 0x0112


def strip_metadata(data: bytes, fmt: str) -> bytes:
    """``data`` without metadata, for a format of ``codec.MIME`` (JPEG, MPO, PNG, WEBP, GIF)."""
    try:
        if fmt in ("JPEG", "MPO"):
            return _jpeg(data)
        if fmt == "PNG":
            return _png(data)
        if fmt == "WEBP":
            return _webp(data)
        if fmt == "GIF":
            return _gif(data)
    except (IndexError, ValueError, struct.error):
        return data  # not the structure expected: sent as given (Pillow read it, so it is valid)
    return data


def orientation_exif(orientation: int) -> bytes:
    """A TIFF-structured EXIF block holding only the orientation tag (big-endian)."""
    entry = struct.pack(">HHIHH", _ORIENTATION, 3, 1, orientation, 0)
    return b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + b"\x00\x00\x00\x00"


def _orientation(tiff: bytes) -> int:
    """The orientation tag of a TIFF-structured EXIF block (1, upright, when absent)."""
    order = "<" if tiff[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    for i in range(count):
        at = offset + 2 + 12 * i
        tag, kind = struct.unpack(order + "HH", tiff[at : at + 4])
        if tag == _ORIENTATION and kind == 3:
            (value,) = struct.unpack(order + "H", tiff[at + 8 : at + 10])
            return value if 1 <= value <= 8 else 1
    return 1


# -- JPEG -----------------------------------------------------------------------------------

_KEEP_APP = {  # APPn segments a decoder needs, by their identifier
    0xE0: (b"JFIF\x00",),  # JFIF (not JFXX, which holds a thumbnail)
    0xE2: (b"ICC_PROFILE\x00",),  # colour profile (not MPF, whose frames are dropped)
    0xEE: (b"Adobe",),  # colour transform of CMYK/YCCK images
}


def _jpeg(data: bytes) -> bytes:
    """Segments before the image data filtered; the entropy-coded data copied byte for byte
    up to the end-of-image marker; anything after it (MPO's extra frames) dropped."""
    if data[:2] != b"\xff\xd8":
        return data
    out = [b"\xff\xd8"]
    orientation = 1
    pos = 2
    n = len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise ValueError("not a marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image
            out.append(b"\xff\xd9")
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if end > n:
            raise ValueError("segment past the end")
        segment = data[pos:end]
        payload = data[pos + 4 : end]
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            orientation = _orientation(payload[6:])
        elif marker == 0xDA:  # start of scan: copy it and its entropy-coded data
            scan_end = _scan_end(data, end)
            out.append(data[pos:scan_end])
            pos = scan_end
            continue
        elif 0xE0 <= marker <= 0xEF or marker == 0xFE:  # APPn and comments
            if any(payload.startswith(tag) for tag in _KEEP_APP.get(marker, ())):
                out.append(segment)
        else:
            out.append(segment)
        pos = end
    else:
        return data  # no end-of-image marker: leave a truncated file as it is
    if orientation != 1:
        exif = b"Exif\x00\x00" + orientation_exif(orientation)
        app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
        at = 2 if len(out) > 1 and out[1].startswith(b"\xff\xe0") else 1  # after SOI (and JFIF)
        out.insert(at, app1)
    result = b"".join(out)
    return data if result == data else result


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data starting at ``pos`` ends: the next marker that is not a
    stuffed 0xFF00 or a restart marker."""
    while True:
        pos = data.index(b"\xff", pos)
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
        elif following == 0xFF:
            pos += 1
        else:
            return pos


# -- PNG ------------------------------------------------------------------------------------

_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _png(data: bytes) -> bytes:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data
    out = [data[:8]]
    pos = 8
    orientation = 1
    dropped = False
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("chunk past the end")
        if kind in _PNG_DROP:
            dropped = True
            if kind == b"eXIf":
                body = data[pos + 8 : pos + 8 + length]
                orientation = _orientation(body[6:] if body.startswith(b"Exif") else body)
        else:
            if kind == b"IDAT" and orientation != 1:  # keep the orientation, alone
                out.append(_png_chunk(b"eXIf", orientation_exif(orientation)))
                orientation = 1
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    return b"".join(out) if dropped else data


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


# -- WebP -----------------------------------------------------------------------------------


def _webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return data
    chunks = []
    pos = 12
    orientation = 1
    dropped = False
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        end = pos + 8 + size + (size & 1)
        if kind in (b"EXIF", b"XMP "):
            dropped = True
            if kind == b"EXIF":
                body = data[pos + 8 : pos + 8 + size]
                orientation = _orientation(body[6:] if body.startswith(b"Exif") else body)
        else:
            chunks.append([kind, data[pos:end]])
        pos = end
    if not dropped:
        return data
    if orientation != 1:
        body = orientation_exif(orientation)
        chunks.append([b"EXIF", b"EXIF" + struct.pack("<I", len(body)) + body])
    for chunk in chunks:
        if chunk[0] == b"VP8X":  # flags: bit 3 EXIF, bit 2 XMP
            raw = bytearray(chunk[1])
            raw[8] = (raw[8] & ~0x0C) | (0x08 if orientation != 1 else 0)
            chunk[1] = bytes(raw)
    body = b"WEBP" + b"".join(c[1] for c in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# -- GIF ------------------------------------------------------------------------------------


def _gif(data: bytes) -> bytes:
    """Comment extensions and application extensions other than looping (NETSCAPE2.0,
    ANIMEXTS1.0) removed."""
    if data[:3] != b"GIF":
        return data
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    out = [data[:pos]]
    dropped = False
    while pos < len(data):
        kind = data[pos]
        if kind == 0x3B:  # trailer
            out.append(b"\x3b")
            break
        if kind == 0x21:  # extension: label, then sub-blocks
            label = data[pos + 1]
            end = _sub_blocks_end(data, pos + 2)
            block = data[pos:end]
            keep = True
            if label == 0xFE:
                keep = False
            elif label == 0xFF:
                ident = data[pos + 3 : pos + 14]
                keep = ident in (b"NETSCAPE2.0", b"ANIMEXTS1.0")
            if keep:
                out.append(block)
            else:
                dropped = True
            pos = end
        elif kind == 0x2C:  # image: descriptor, local colour table, LZW data
            local = data[pos + 9]
            start = pos + 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            end = _sub_blocks_end(data, start + 1)
            out.append(data[pos:end])
            pos = end
        else:
            raise ValueError("unknown GIF block")
    else:
        return data
    return b"".join(out) if dropped else data


def _sub_blocks_end(data: bytes, pos: int) -> int:
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
