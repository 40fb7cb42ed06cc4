#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""executor, the asyncio peer of uco-bench.

A trivial job (a function returning its argument + 1) run with
loop.run_in_executor(ThreadPoolExecutor(WORKERS), fn, x), its result back
in the awaiting coroutine.  One asyncio.run() does, each after an untimed
warm-up of the same work:
  rt       RT_JOBS sequential awaits, each timed on CLOCK_MONOTONIC
           (time.monotonic_ns); rt_us is their median;
  ops      INFLIGHT tasks, each awaiting run_in_executor in a loop until
           JOBS jobs have been taken, gathered; ops_per_s = JOBS / wall time
           from just before the first create_task to the last result.
cpu_s_rt and cpu_s_throughput are the CPU seconds (user + sys of every
thread, resource.getrusage(RUSAGE_SELF)) of the two timed runs.  Prints
BENCH.md JSON lines on stdout; uco-bench runs it as a fresh child process.
"""
import argparse
import asyncio
import json
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor


def emit(metric, value, unit):
    print(json.dumps({"bench": "executor", "impl": "asyncio",
                      "metric": metric, "value": value, "unit": unit}),
          flush=True)


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def add_one(x):
    return x + 1


async def rt_run(loop, pool, n):
    lat = [0] * n
    now = time.monotonic_ns
    for i in range(n):
        t0 = now()
        v = await loop.run_in_executor(pool, add_one, i)
        lat[i] = now() - t0
        if v != i + 1:
            raise RuntimeError(f"job {i} returned {v}")
    return lat


class Shared:
    __slots__ = ("total", "issued", "done", "t_last")

    def __init__(self, total):
        self.total = total
        self.issued = 0
        self.done = 0
        self.t_last = 0


async def thr_worker(loop, pool, st):
    while st.issued < st.total:
        x = st.issued
        st.issued += 1
        v = await loop.run_in_executor(pool, add_one, x)
        if v != x + 1:
            raise RuntimeError(f"job {x} returned {v}")
        st.done += 1
        if st.done == st.total:
            st.t_last = time.monotonic_ns()


async def thr_run(loop, pool, total, inflight):
    st = Shared(total)
    t0 = time.monotonic_ns()
    tasks = [asyncio.create_task(thr_worker(loop, pool, st))
             for _ in range(inflight)]
    await asyncio.gather(*tasks)
    if st.done != total:
        raise RuntimeError(f"{st.done} of {total} jobs done")
    return st.t_last - t0


async def main(a):
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=a.workers) as pool:
        await rt_run(loop, pool, a.rt_warmup)
        c0 = cpu_seconds()
        lat = await rt_run(loop, pool, a.rt_jobs)
        cpu_rt = cpu_seconds() - c0

        await thr_run(loop, pool, a.warmup, a.inflight)
        c0 = cpu_seconds()
        ns = await thr_run(loop, pool, a.jobs, a.inflight)
        cpu_thr = cpu_seconds() - c0

    emit("rt_us", round(statistics.median(lat) / 1e3, 3), "us")
    emit("cpu_s_rt", round(cpu_rt, 6), "s")
    emit("ops_per_s", round(a.jobs * 1e9 / ns, 1), "ops/s")
    emit("cpu_s_throughput", round(cpu_thr, 6), "s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rt-jobs", type=int, default=10000)
    ap.add_argument("--rt-warmup", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=200000)
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--inflight", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    asyncio.run(main(ap.parse_args()))
