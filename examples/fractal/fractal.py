#!/usr/bin/env python3
"""Render one frame of a Mandelbrot zoom as a PNG (standard library only).

Usage: fractal.py FRAME OUT_DIR [--frames N] [--size WxH]
Writes OUT_DIR/frame.FFFF.png. Prints progress so the frame's log shows it.
"""
import argparse
import os
import struct
import sys
import zlib


def png(path, width, height, rows):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    data = (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # readers never see half a frame


def colour(i, max_iter):
    if i >= max_iter:
        return (0, 0, 0)
    t = i / max_iter
    return (int(9 * (1 - t) * t ** 3 * 255), int(15 * (1 - t) ** 2 * t ** 2 * 255), int(8.5 * (1 - t) ** 3 * t * 255))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("frame", type=int)
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="160x120")
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.split("x"))
    # Zoom towards a point on the set's edge: each frame 12% closer.
    cx, cy = -0.743643887, 0.131825904
    scale = 3.0 * (0.88 ** (a.frame - 1))
    max_iter = 60 + 6 * a.frame
    rows = []
    for y in range(height):
        row = []
        ci = cy + (y - height / 2) * scale / width
        for x in range(width):
            cr = cx + (x - width / 2) * scale / width
            zr = zi = 0.0
            i = 0
            while i < max_iter and zr * zr + zi * zi < 4.0:
                zr, zi = zr * zr - zi * zi + cr, 2 * zr * zi + ci
                i += 1
            row.extend(colour(i, max_iter))
        rows.append(row)
        if y % (height // 4) == 0:
            print(f"frame {a.frame}: row {y}/{height}", flush=True)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"frame.{a.frame:04d}.png")
    png(path, width, height, rows)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
