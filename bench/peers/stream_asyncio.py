#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""stream, the asyncio peer of uco-bench.

Reads LINES lines of BYTES bytes (newline included) with
asyncio.StreamReader.readline() from the connected stream socket FD, which
uco-bench's producer thread fills, and checks each (its length, and its
first byte: b"a"[0] + i % 26), as the uco implementations do.  Timed on
CLOCK_MONOTONIC from just before the first readline to just after the
last.  One line of BENCH.md JSON on stdout: lines_per_s.
"""
import argparse
import asyncio
import json
import socket
import sys
import time


async def main(fd, lines, size):
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    readline = reader.readline
    t0 = time.monotonic_ns()
    for i in range(lines):
        line = await readline()
        if len(line) != size or line[0] != 97 + i % 26:
            print(f"uco-bench: stream/asyncio: line {i} is wrong: {line[:16]!r}",
                  file=sys.stderr)
            sys.exit(1)
    elapsed = time.monotonic_ns() - t0
    writer.close()
    print(json.dumps({"bench": "stream", "impl": "asyncio", "metric": "lines_per_s",
                      "value": round(lines / (elapsed / 1e9), 1), "unit": "lines/s"}),
          flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--lines", type=int, default=1000000)
    ap.add_argument("--bytes", type=int, default=64)
    a = ap.parse_args()
    asyncio.run(main(a.fd, a.lines, a.bytes))
