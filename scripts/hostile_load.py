#!/usr/bin/env python3
"""Hostile-load benchmark driver (scripts/bench-hostile.sh starts the server).

Phase 1: NORMAL clients upload an image and read its record, back to back, for SECONDS.
Phase 2: the same, while SLOW clients each hold an upload whose body trickles one byte
every few seconds (each with a key of its own, so that only the server-wide limits
apply) and FLOODS clients ask /readyz as fast as they can.
Phase 3 (optional, STALLERS > 0): clients that send 8 MB of an upload and then stall, the
memory attack, with the normal clients measured again.
Prints one line per phase: the normal clients' requests, p50 and p99, errors, and what
the hostile clients got. Stdlib only; HTTP/1.1 over asyncio streams.
"""

import asyncio
import json
import os
import sys
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])
NORMAL_KEY = sys.argv[3]
SLOW_KEYS = sys.argv[4].split(",")
IMAGE = open(sys.argv[5], "rb").read()
SECONDS = float(os.environ.get("SECONDS_PER_PHASE", "30"))
NORMAL = int(os.environ.get("NORMAL", "20"))
SLOW = int(os.environ.get("SLOW", "200"))
FLOODS = int(os.environ.get("FLOODS", "50"))
STALLERS = int(os.environ.get("STALLERS", "0"))
SERVER_PID = os.environ.get("SERVER_PID")


def peak_rss_mb():
    """The server's peak RSS since the last reset, then reset (clear_refs 5)."""
    if not SERVER_PID:
        return float("nan")
    status = open(f"/proc/{SERVER_PID}/status").read()
    kb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
    try:
        with open(f"/proc/{SERVER_PID}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return kb / 1024


async def request(method, path, key=None, body=b"", content_type="image/jpeg"):
    reader, writer = await asyncio.open_connection(HOST, PORT)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
        if key:
            head += f"Authorization: Bearer {key}\r\n"
        if method == "POST":
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        data = await reader.read()
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return status, data.split(b"\r\n\r\n", 1)[-1]
    finally:
        writer.close()


async def normal_client(until, latencies, errors):
    while time.monotonic() < until:
        t = time.monotonic()
        try:
            status, body = await request("POST", "/v1/images", NORMAL_KEY, IMAGE)
            if status != 202:
                errors.append(status)
                await asyncio.sleep(0.2)
                continue
            image_id = json.loads(body)["id"]
            status, _ = await request("GET", f"/v1/images/{image_id}", NORMAL_KEY)
            if status != 200:
                errors.append(status)
                continue
            latencies.append(time.monotonic() - t)
        except (OSError, ValueError) as e:
            errors.append(type(e).__name__)


def upload_head(key):
    """The head of an upload that announces a 50 MB body."""
    return (
        f"POST /v1/images HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: image/jpeg\r\nContent-Length: {50 << 20}\r\n\r\n"
    ).encode()


async def slow_client(key, stop, seen):
    """Holds an upload open, one byte every 5 s; starts again if refused or cut off."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, PORT)
            writer.write(upload_head(key) + IMAGE[:1024])
            await writer.drain()
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), 5)
                    seen.append(int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else "closed")
                    break
                except asyncio.TimeoutError:
                    writer.write(b"\x00")
                    await writer.drain()
            writer.close()
        except (OSError, ValueError):
            seen.append("error")
        await asyncio.sleep(1)


async def staller(key, stop, seen):
    """Sends 8 MB of an upload, then nothing."""
    try:
        reader, writer = await asyncio.open_connection(HOST, PORT)
        writer.write(upload_head(key) + IMAGE[:4096] + bytes(8 << 20))
        await writer.drain()
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(4096), 1)
                seen.append(int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else "closed")
                break
            except asyncio.TimeoutError:
                pass
        writer.close()
    except (OSError, ValueError):
        seen.append("error")


async def flood(stop, count):
    while not stop.is_set():
        try:
            status, _ = await request("GET", "/readyz")
            count[status] = count.get(status, 0) + 1
        except OSError:
            count["error"] = count.get("error", 0) + 1


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")


async def phase(name, hostile=None):
    stop = asyncio.Event()
    seen, floods = [], {}
    tasks = []
    if hostile == "slow":
        tasks += [asyncio.create_task(slow_client(SLOW_KEYS[i % len(SLOW_KEYS)], stop, seen)) for i in range(SLOW)]
        tasks += [asyncio.create_task(flood(stop, floods)) for _ in range(FLOODS)]
    elif hostile == "stall":
        tasks += [asyncio.create_task(staller(SLOW_KEYS[i % len(SLOW_KEYS)], stop, seen)) for i in range(STALLERS)]
    if tasks:
        await asyncio.sleep(3)  # let the hostile clients settle in
    latencies, errors = [], []
    until = time.monotonic() + SECONDS
    await asyncio.gather(*[normal_client(until, latencies, errors) for _ in range(NORMAL)])
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    answers = {}
    for s in seen:
        answers[s] = answers.get(s, 0) + 1
    print(
        f"HOSTILE {name}: server peak RSS {peak_rss_mb():.0f} MB; normal {len(latencies)} ok ({len(latencies) / SECONDS:.1f}/s), "
        f"p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms, errors {len(errors)} {sorted(set(map(str, errors)))}; "
        f"hostile answers {answers}; readyz {floods}",
        flush=True,
    )


async def main():
    peak_rss_mb()
    await phase("baseline")
    await phase("slow+floods", "slow")
    if STALLERS:
        await phase("stall-after-8MB", "stall")


asyncio.run(main())
