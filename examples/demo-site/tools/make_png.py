"""Write assets/img/chart.png, the blog post's bar chart, with the standard library only."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

WIDTH, HEIGHT = 400, 240
BACKGROUND = (255, 255, 255)
AXIS = (74, 85, 104)
# Median days to detection by incident type (the blog post's figure).
BARS = [(0.2, (29, 78, 216)), (1.5, (29, 78, 216)), (6.0, (180, 83, 9)), (11.0, (180, 83, 9))]


def pixels() -> list[list[tuple[int, int, int]]]:
    image = [[BACKGROUND] * WIDTH for _ in range(HEIGHT)]
    for x in range(30, WIDTH - 20):
        image[HEIGHT - 30][x] = AXIS
    for y in range(20, HEIGHT - 29):
        image[y][30] = AXIS
    scale = (HEIGHT - 60) / max(value for value, _ in BARS)
    for index, (value, colour) in enumerate(BARS):
        left = 55 + index * 85
        top = HEIGHT - 31 - int(value * scale)
        for y in range(top, HEIGHT - 30):
            for x in range(left, left + 55):
                image[y][x] = colour
    return image


def png(image: list[list[tuple[int, int, int]]]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + bytes(channel for pixel in row for channel in pixel) for row in image)
    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "assets" / "img" / "chart.png"
    target.write_bytes(png(pixels()))
