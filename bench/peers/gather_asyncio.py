#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gather, the asyncio peer of uco-bench.

TASKS tasks made with asyncio.create_task(), then awaited together with
asyncio.gather(*tasks):
  ms_sleep   each task awaits asyncio.sleep(MS / 1000), then returns;
  ms_return  each task returns at once.
Timed on CLOCK_MONOTONIC (time.monotonic_ns) from just before the first
create_task to just after gather returns, inside the gathering coroutine,
as uco's driver task does.  Every value is checked (task i returns i + 1).
One asyncio.run() holds every round: one untimed warm-up round of each
metric, then ROUNDS timed rounds of each, the two alternating.  Prints
BENCH.md JSON lines on stdout, one per timed round.  uco-bench runs it as a
fresh child process.
"""
import argparse
import asyncio
import json
import sys
import time


def emit(metric, value, unit):
    print(json.dumps({"bench": "gather", "impl": "asyncio", "metric": metric,
                      "value": value, "unit": unit}), flush=True)


async def returner(v):
    return v


async def sleeper(v, seconds):
    await asyncio.sleep(seconds)
    return v


async def one_round(n, seconds):
    create_task = asyncio.create_task
    t0 = time.monotonic_ns()
    if seconds is None:
        tasks = [create_task(returner(i + 1)) for i in range(n)]
    else:
        tasks = [create_task(sleeper(i + 1, seconds)) for i in range(n)]
    values = await asyncio.gather(*tasks)
    elapsed = time.monotonic_ns() - t0
    if values != list(range(1, n + 1)):
        raise RuntimeError("gather returned wrong values")
    return elapsed / 1e6


async def main(rounds, n, seconds):
    for r in range(rounds + 1):  # round 0 is the warm-up
        ms = await one_round(n, seconds)
        if seconds * 1e3 > ms:
            print(f"uco-bench: gather/asyncio: ms_sleep took {ms:.3f} ms, "
                  f"less than the sleep", file=sys.stderr)
        if r > 0:
            emit("ms_sleep", round(ms, 3), "ms")
        ms = await one_round(n, None)
        if r > 0:
            emit("ms_return", round(ms, 3), "ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--ms", type=float, default=1.0)
    a = ap.parse_args()
    asyncio.run(main(a.rounds, a.tasks, a.ms / 1000.0))
