#!/usr/bin/env python3
"""Assemble rendered frames into an animated PNG and a contact sheet.

Usage: assemble.py OUT_DIR
Reads OUT_DIR/frame.*.png (as written by fractal.py), writes
OUT_DIR/fractal.apng (plays in any browser) and OUT_DIR/contact.png.
"""
import glob
import os
import struct
import sys
import zlib


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def read_png(path):
    """Decode the 8-bit RGB, filter-0 PNGs fractal.py writes."""
    with open(path, "rb") as f:
        data = f.read()
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * 3 + 1
    rows = [raw[y * stride + 1:(y + 1) * stride] for y in range(height)]
    return width, height, rows


def main():
    out = sys.argv[1]
    paths = sorted(glob.glob(os.path.join(out, "frame.*.png")))
    if not paths:
        print(f"no frames in {out}", file=sys.stderr)
        return 1
    frames = [read_png(p) for p in paths]
    width, height, _ = frames[0]
    print(f"assembling {len(frames)} frames of {width}x{height}")

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    parts = [b"\x89PNG\r\n\x1a\n", ihdr, chunk(b"acTL", struct.pack(">II", len(frames), 0))]
    seq = 0
    for i, (_, _, rows) in enumerate(frames):
        fctl = struct.pack(">IIIIIHHBB", seq, width, height, 0, 0, 1, 12, 0, 0)
        parts.append(chunk(b"fcTL", fctl))
        seq += 1
        pixels = zlib.compress(b"".join(b"\x00" + r for r in rows), 6)
        if i == 0:
            parts.append(chunk(b"IDAT", pixels))
        else:
            parts.append(chunk(b"fdAT", struct.pack(">I", seq) + pixels))
            seq += 1
    parts.append(chunk(b"IEND", b""))
    with open(os.path.join(out, "fractal.apng"), "wb") as f:
        f.write(b"".join(parts))

    cols = 6
    sheet_rows = (len(frames) + cols - 1) // cols
    sheet = []
    for r in range(sheet_rows):
        for y in range(height):
            line = b""
            for c in range(cols):
                k = r * cols + c
                line += frames[k][2][y] if k < len(frames) else b"\x00" * (width * 3)
            sheet.append(line)
    raw = b"".join(b"\x00" + line for line in sheet)
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width * cols, height * sheet_rows, 8, 2, 0, 0, 0))
    with open(os.path.join(out, "contact.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    print(f"wrote {out}/fractal.apng and {out}/contact.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
