#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""subprocess, the asyncio peer of uco-bench.

COUNT times, one after the other: asyncio.create_subprocess_exec(PROGRAM)
(stdio inherited) and await proc.wait(); every return code is checked (0).
us_per_spawn = wall time / COUNT, timed on CLOCK_MONOTONIC
(time.monotonic_ns) inside the coroutine.  One asyncio.run() holds every
round: one untimed warm-up round, then ROUNDS timed rounds.  Prints BENCH.md
JSON lines on stdout, one per timed round.  uco-bench runs it as a fresh
child process.
"""
import argparse
import asyncio
import json
import time


def emit(metric, value, unit):
    print(json.dumps({"bench": "subprocess", "impl": "asyncio", "metric": metric,
                      "value": value, "unit": unit}), flush=True)


async def one_round(count, program):
    t0 = time.monotonic_ns()
    for _ in range(count):
        proc = await asyncio.create_subprocess_exec(program)
        rc = await proc.wait()
        if rc != 0:
            raise RuntimeError(f"{program} returned {rc}")
    return (time.monotonic_ns() - t0) / 1e3 / count


async def main(rounds, count, program):
    for r in range(rounds + 1):  # round 0 is the warm-up
        us = await one_round(count, program)
        if r > 0:
            emit("us_per_spawn", round(us, 3), "us")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--program", default="/bin/true")
    a = ap.parse_args()
    asyncio.run(main(a.rounds, a.count, a.program))
