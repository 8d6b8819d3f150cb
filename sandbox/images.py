"""Just enough image decoding to name the type and size of a data-URL image."""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    width: int
    height: int
    is_data_url: bool


def _dimensions(data: bytes) -> tuple[str, int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return "image/png", w, h
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return "image/gif", w, h
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            # SOF0..SOF15 except DHT/JPG/DAC carry the frame size.
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return "image/jpeg", w, h
            i += 2 + length
        return "image/jpeg", 0, 0
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", 0, 0
    return "application/octet-stream", 0, 0


def inspect_image_url(url: str) -> ImageInfo | None:
    """None when a data URL cannot be decoded (the caller turns that into a 400)."""
    if not url.startswith("data:"):
        # http(s) URLs are accepted and never fetched; assume a 512x512 image.
        return ImageInfo("image/unknown", 512, 512, False)
    header, _, payload = url.partition(",")
    declared = header[5:].split(";")[0] or "application/octet-stream"
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None
    mime, w, h = _dimensions(data[:65536])
    if mime == "application/octet-stream":
        return None
    return ImageInfo(mime if mime != "image/webp" else declared, w, h, True)
