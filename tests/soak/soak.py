#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The soak: load held for a fixed time, nothing lost.

  1. uco-echo under uco-lat: thousands of connections, every byte checked,
     clients leaving and coming back at random (--churn), and the server
     cancelling its own in-flight receives at random (--chaos-cancel), which
     must lose nothing.
  2. uco-http under wrk: keep-alive connections with churn (a share of the
     requests say Connection: close).

Each part reports bytes sent, bytes verified, errors (must be zero) and the
server's RSS over the run.  Short in CI; long on demand:

    meson test -C build soak --test-args='--duration 600'
    python3 tests/soak/soak.py build/tools/uco-echo build/tools/uco-lat \\
        build/tools/uco-http --duration 600

RSS growth between the first and the last minute must stay under 1% in a
run of at least five minutes; shorter runs report it only (the allocator
and the stack pool are still warming up).

usage: soak.py UCO_ECHO UCO_LAT UCO_HTTP [--duration S] [--connections N]"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, seconds=10):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            fail(f"server exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    fail(f"nothing listens on {port}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """The server's RSS once a second, from `start` on."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.stop.wait(1.0):
            try:
                self.samples.append((time.monotonic() - t0, rss_kib(self.pid)))
            except OSError:
                return

    def report(self, name, duration, warmup):
        self.stop.set()
        self.join()
        s = [(t, r) for t, r in self.samples if t >= warmup]
        if len(s) < 2:
            print(f"{name}: RSS: too few samples")
            return
        window = 60 if duration >= 300 else max(1, duration / 5)
        first = [r for t, r in s if t < s[0][0] + window]
        last = [r for t, r in s if t > s[-1][0] - window]
        a, b = sum(first) / len(first), sum(last) / len(last)
        growth = (b - a) / a * 100
        print(f"{name}: server RSS {s[0][1] / 1024:.1f} MiB after warm-up, "
              f"{s[-1][1] / 1024:.1f} MiB at the end; first vs last {window:.0f} s: "
              f"{growth:+.2f}%")
        if duration >= 300 and growth >= 1.0:
            fail(f"{name}: RSS grew {growth:.2f}% (limit 1%)")


def start(argv):
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc, name):
    """SIGINT; the server must exit 0.  Its stderr."""
    proc.send_signal(2)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail(f"{name} did not exit on SIGINT")
    if proc.returncode != 0:
        fail(f"{name} exited with {proc.returncode}: {err[-20000:]}")
    return err


def soak_echo(args):
    port = free_port()
    server = start([args.uco_echo, "--tcp", "--port", str(port), "--addr", "127.0.0.1",
                    "--chaos-cancel", "0.01"])
    wait_port(port, server)
    rss = RssSampler(server.pid)
    rss.start()
    warmup = 2
    lat = subprocess.run([args.uco_lat, "--json", "-q", "-c", str(args.connections),
                          "-d", str(args.duration), "-w", str(warmup), "-s", "300",
                          "-p", "2", "--churn", "0.002", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=args.duration + 120)
    rss.report("echo", args.duration, warmup)
    err = finish(server, "uco-echo")
    cancels = [l for l in err.splitlines() if "--chaos-cancel:" in l]
    print(f"echo: server-side {cancels[-1].split(': ')[-1] if cancels else '? cancels'} "
          "of in-flight operations")
    if not cancels or cancels[-1].split()[-2] == "0":
        fail(f"echo soak: the server cancelled nothing: {err[-2000:]}")
    try:
        r = json.loads(lat.stdout)
    except ValueError:
        fail(f"uco-lat: rc {lat.returncode}: {lat.stdout!r} {lat.stderr[-2000:]!r}")
    print(f"echo: {args.connections} connections for {args.duration} s: "
          f"{r['bytes_sent']} bytes sent, {r['bytes']} received and verified, "
          f"{r['requests'] / max(r['duration_s'], 1e-9):.0f} round trips/s, "
          f"{r['reconnects']} client reconnects, errors {r['errors']}, bad bytes {r['bad']}, "
          f"p99 {r['p99_us']:.0f} us")
    if lat.returncode != 0 or r["errors"] or r["bad"] or not r["bytes"]:
        fail(f"echo soak: rc {lat.returncode} {r} {lat.stderr[-2000:]}")


CHURN_LUA = """
-- Keep-alive churn: one request in 20 asks the server to close.
local n = 0
request = function()
  n = n + 1
  if n % 20 == 0 then
    return wrk.format("GET", "/plaintext", {["Connection"] = "close"})
  end
  return wrk.format("GET", n % 2 == 0 and "/plaintext" or "/bytes/4096")
end
"""


def soak_http(args):
    wrk = shutil.which("wrk")
    if not wrk:
        print("http: skipped: wrk not installed (Debian package wrk)")
        return
    port = free_port()
    server = start([args.uco_http, "--port", str(port), "--addr", "127.0.0.1"])
    wait_port(port, server)
    rss = RssSampler(server.pid)
    rss.start()
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(CHURN_LUA)
        script.flush()
        conns = min(args.connections, 1000)
        out = subprocess.run([wrk, "-t1", f"-c{conns}", f"-d{max(1, round(args.duration))}s", "-s",
                              script.name, f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=args.duration + 60)
    rss.report("http", args.duration, 2)
    finish(server, "uco-http")
    text = out.stdout
    requests = next((l.split()[0] for l in text.splitlines() if "requests in" in l), "?")
    errors = [l.strip() for l in text.splitlines()
              if l.strip().startswith(("Socket errors", "Non-2xx"))]
    print(f"http: {conns} connections for {args.duration} s with keep-alive churn: "
          f"{requests} requests; {'; '.join(errors) or 'no socket errors, no non-2xx'}")
    # wrk counts the server's close after "Connection: close" as a read
    # error only if the answer was cut short; any error fails the soak.
    if out.returncode != 0 or errors or requests == "?":
        fail(f"http soak: rc {out.returncode}\n{text}\n{out.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("uco_echo")
    ap.add_argument("uco_lat")
    ap.add_argument("uco_http")
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--connections", type=int, default=2000)
    args = ap.parse_args()
    soak_echo(args)
    soak_http(args)
    print("ok")


if __name__ == "__main__":
    main()
