#!/usr/bin/env python3
"""Draws a lazy-pages fault trace (lazy-pages --trace FILE) as a PNG: time across, faulting
page down, so that a person can see the access pattern. Pages are ranked by address (the
address space is sparse), one colour per pid. Standard library only.

    bench/plot_faults.py TRACE OUT.png [WIDTH HEIGHT]
"""
import struct
import sys
import zlib

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def read_trace(path):
    points = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                points.append((int(parts[0]), int(parts[1]), int(parts[2], 16)))
    return points


def write_png(path, width, height, pixels):
    raw = b"".join(b"\x00" + bytes(pixels[y * width * 3:(y + 1) * width * 3]) for y in range(height))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    height = int(sys.argv[4]) if len(sys.argv) > 4 else 600
    points = read_trace(sys.argv[1])
    pixels = bytearray([255] * width * height * 3)
    margin = 20
    for x in range(margin, width - margin):  # time axis
        pixels[((height - margin) * width + x) * 3:((height - margin) * width + x) * 3 + 3] = b"\x00\x00\x00"
    for y in range(margin, height - margin):  # page axis
        pixels[(y * width + margin) * 3:(y * width + margin) * 3 + 3] = b"\x00\x00\x00"
    if points:
        t_max = max(p[0] for p in points) or 1
        pages = sorted({p[2] for p in points})
        rank = {a: i for i, a in enumerate(pages)}
        pids = sorted({p[1] for p in points})
        for t, pid, addr in points:
            x = margin + 1 + int((t / t_max) * (width - 2 * margin - 2))
            y = height - margin - 1 - int((rank[addr] / max(1, len(pages) - 1)) * (height - 2 * margin - 2))
            colour = COLOURS[pids.index(pid) % len(COLOURS)]
            for dx in (0, 1):
                for dy in (0, 1):
                    i = ((y - dy) * width + x + dx) * 3
                    pixels[i:i + 3] = bytes(colour)
    write_png(sys.argv[2], width, height, pixels)
    print("%s: %d faults, %d distinct pages, %d pids" % (
        sys.argv[2], len(points), len({p[2] for p in points}), len({p[1] for p in points})))


if __name__ == "__main__":
    main()
