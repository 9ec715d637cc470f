"""The client side of scripts/bench-upload.sh: a large PNG, and uploads streamed from disk.

    bench_upload.py png OUT BYTES          write a real RGB PNG of about BYTES bytes (zlib
                                           level 0: stored blocks, rows streamed, never the
                                           whole image in memory), 8192 pixels wide
    bench_upload.py tus BASE KEY FILE CHUNK_BYTES
                                           tus 1.0 upload (POST /v1/uploads, then PATCHes of
                                           CHUNK_BYTES read from FILE as they are sent)
    bench_upload.py direct BASE KEY FILE   POST /v1/uploads/direct, PUT each part to its
                                           presigned URL (streamed from FILE), complete

tus and direct print one JSON line: {"seconds": S, "bytes": N, "status": ..., "image": ...}.
Only `requests` (in the venv of scripts/install.sh) beyond the standard library.
"""

import json
import os
import struct
import sys
import time
import zlib

import requests

WIDTH = 8192


def png(out, target):
    row_bytes = 1 + 3 * WIDTH  # filter byte + RGB
    height = max(1, -(-target // row_bytes))
    # A few distinct rows (gradients that shift from row to row), cycled: content does
    # not change the cost of stored (level-0) deflate blocks, and no pixel array is held.
    patterns = []
    for k in range(64):
        line = bytearray(row_bytes)
        line[0] = 0
        for x in range(WIDTH):
            line[1 + 3 * x] = (x + 4 * k) & 0xFF
            line[2 + 3 * x] = (x >> 5) & 0xFF
            line[3 + 3 * x] = (k * 4) & 0xFF
        patterns.append(bytes(line))

    def chunk(f, kind, data):
        f.write(struct.pack(">I", len(data)))
        f.write(kind)
        f.write(data)
        f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))

    tmp = out + ".part"
    with open(tmp, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        chunk(f, b"IHDR", struct.pack(">IIBBBBB", WIDTH, height, 8, 2, 0, 0, 0))
        z = zlib.compressobj(level=0)
        pending = []
        size = 0
        for y in range(height):
            data = z.compress(patterns[y % len(patterns)])
            if data:
                pending.append(data)
                size += len(data)
            if size >= 4 << 20:
                chunk(f, b"IDAT", b"".join(pending))
                pending, size = [], 0
        pending.append(z.flush())
        chunk(f, b"IDAT", b"".join(pending))
        chunk(f, b"IEND", b"")
    os.replace(tmp, out)
    print(f"{out}: {WIDTH}x{height} PNG, {os.path.getsize(out)} bytes", file=sys.stderr)


class Window:
    """FILE[offset, offset+length) as a file-like body: requests sends Content-Length
    (from __len__) and reads it block by block as the socket takes it."""

    def __init__(self, path, offset, length):
        self.f = open(path, "rb")
        self.f.seek(offset)
        self.left = length
        self.length = length

    def __len__(self):
        return self.length

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        # Big reads: fewer Python-level calls per gigabyte.
        data = self.f.read(max(n, 0))
        self.left -= len(data)
        return data

    def close(self):
        self.f.close()


def fail(res, what):
    print(f"{what}: {res.status_code} {res.text[:500]}", file=sys.stderr)
    sys.exit(1)


def tus(base, key, path, chunk_bytes):
    size = os.path.getsize(path)
    s = requests.Session()
    auth = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0"}
    start = time.monotonic()
    res = s.post(f"{base}/v1/uploads", headers={**auth, "Upload-Length": str(size)})
    if res.status_code != 201:
        fail(res, "POST /v1/uploads")
    url = requests.compat.urljoin(f"{base}/v1/uploads", res.headers["Location"])
    offset, image = 0, None
    while offset < size:
        n = min(chunk_bytes, size - offset)
        body = Window(path, offset, n)
        headers = {**auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
        try:
            res = s.patch(url, data=body, headers=headers)
        finally:
            body.close()
        if res.status_code != 204:
            fail(res, f"PATCH at {offset}")
        offset = int(res.headers["Upload-Offset"])
        image = res.headers.get("Imagelake-Image")
    secs = time.monotonic() - start
    print(json.dumps({"seconds": secs, "bytes": size, "status": 204, "image": image, "chunk": chunk_bytes}))


def direct(base, key, path):
    size = os.path.getsize(path)
    s = requests.Session()
    auth = {"Authorization": f"Bearer {key}"}
    start = time.monotonic()
    res = s.post(f"{base}/v1/uploads/direct", headers=auth,
                 json={"size": size, "filename": os.path.basename(path), "content_type": "image/png"})
    if res.status_code != 201:
        fail(res, "POST /v1/uploads/direct")
    plan = res.json()
    part_size = plan["part_size"]
    plain = requests.Session()  # no Authorization to the store: the URL is the credential
    done = []
    for part in plan["parts"]:
        i = part["number"]
        offset = (i - 1) * part_size
        body = Window(path, offset, min(part_size, size - offset))
        try:
            res = plain.put(part["url"], data=body)
        finally:
            body.close()
        if res.status_code != 200:
            fail(res, f"PUT part {i}")
        done.append({"number": i, "etag": res.headers["ETag"]})
    res = s.post(f"{base}{plan['complete']}", headers=auth, json={"parts": done})
    if res.status_code != 202:
        fail(res, "complete")
    secs = time.monotonic() - start
    print(json.dumps({"seconds": secs, "bytes": size, "status": 202, "image": res.headers.get("Location"),
                      "part_size": part_size, "parts": len(done)}))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "png":
        png(args[0], int(args[1]))
    elif cmd == "tus":
        tus(args[0], args[1], args[2], int(args[3]))
    elif cmd == "direct":
        direct(args[0], args[1], args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
