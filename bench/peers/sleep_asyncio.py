#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""sleep, the asyncio peer of uco-bench.

TASKS concurrent asyncio.sleep(MS / 1000) tasks: each one created with
asyncio.create_task(), all gathered.  One asyncio.run() holds every round,
as uco's rounds share one loop.  The last task to wake takes the time (a
countdown), measured from just before the first create_task on
CLOCK_MONOTONIC (time.monotonic_ns).  Prints BENCH.md JSON lines on stdout:
wall_ms_cold (round 1), wall_ms and cpu_ms (each later round: the CPU time
of this process in it), peak_rss_mib (VmHWM of this process at its end).
uco-bench runs it as a fresh child process.
"""
import argparse
import asyncio
import json
import sys
import time


def emit(metric, value, unit):
    print(json.dumps({"bench": "sleep", "impl": "asyncio", "metric": metric,
                      "value": value, "unit": unit}), flush=True)


class Round:
    __slots__ = ("n", "remaining", "first_wake", "last_wake")

    def __init__(self, n):
        self.n = n
        self.remaining = n
        self.first_wake = 0
        self.last_wake = 0


async def sleeper(st, seconds):
    await asyncio.sleep(seconds)
    if st.remaining == st.n:
        st.first_wake = time.monotonic_ns()
    st.remaining -= 1
    if st.remaining == 0:
        st.last_wake = time.monotonic_ns()


async def one_round(n, seconds):
    st = Round(n)
    t0 = time.monotonic_ns()
    tasks = [asyncio.create_task(sleeper(st, seconds)) for _ in range(n)]
    await asyncio.gather(*tasks)
    if st.remaining != 0:
        raise RuntimeError(f"{st.remaining} sleepers not woken")
    if st.first_wake - t0 < seconds * 1e9:
        print(f"uco-bench: sleep/asyncio: a sleep ended "
              f"{(st.first_wake - t0) / 1e6:.3f} ms after the first spawn",
              file=sys.stderr)
    return (st.last_wake - t0) / 1e6


async def main(rounds, n, seconds):
    for r in range(rounds):
        cpu0 = time.process_time_ns()
        ms = await one_round(n, seconds)
        cpu = (time.process_time_ns() - cpu0) / 1e6
        emit("wall_ms_cold" if r == 0 else "wall_ms", round(ms, 3), "ms")
        if r > 0:
            emit("cpu_ms", round(cpu, 3), "ms")


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--tasks", type=int, default=100000)
    ap.add_argument("--ms", type=float, default=10.0)
    a = ap.parse_args()
    asyncio.run(main(a.rounds, a.tasks, a.ms / 1000.0))
    emit("peak_rss_mib", round(peak_rss_mib(), 3), "MiB")
