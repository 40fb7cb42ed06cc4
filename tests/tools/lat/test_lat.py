#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""uco-lat against small servers written here, so that every figure it
prints can be checked: echo and HTTP answers, byte verification (a server
that corrupts), coordinated-omission correction (a server that stalls),
the .hgrm/.svg/JSON outputs, the client's own cost and backend, the
progress line, and its errors.

usage: test_lat.py UCO_LAT TEST"""
import json
import os
import pty
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import check, fail  # noqa: E402

LAT = sys.argv[1]


class Server:
    """A threaded TCP server on 127.0.0.1 (a free port); handler(conn)."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            conn, _ = self.sock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()


def echo(conn):
    while data := conn.recv(65536):
        conn.sendall(data)


def run(*args, timeout=30):
    p = subprocess.run([LAT, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def run_json(*args):
    rc, out, err = run("--json", *args)
    try:
        result = json.loads(out)
    except ValueError:
        if rc != 0 and not out.strip():
            return rc, None, err  # it failed before measuring: the caller checks rc
        fail(f"not one JSON object (rc {rc}): {out!r} {err!r}")
    return rc, result, err


def test_echo():
    srv = Server(echo)
    for extra in ([], ["-p", "4"], ["-t", "2"], ["-s", "100000", "-c", "2"]):
        size = int(extra[1]) if extra[:1] == ["-s"] else 64
        rc, r, err = run_json("-c", 4, "-d", 0.5, "-w", 0.1, *extra, f"localhost:{srv.port}")
        check(rc == 0, f"{extra}: rc {rc}, {err}")
        check(r["requests"] > 10 and r["errors"] == 0 and r["bad"] == 0, f"{extra}: {r}")
        # Every answer was compared byte for byte, warm-up included.
        check(r["bytes"] >= r["requests"] * size, f"{extra}: {r}")
        check(0 < r["p50_us"] <= r["p99_us"] <= r["max_us"], f"{extra}: {r}")
        check(abs(r["rps"] - r["requests"] / r["duration_s"]) < 1, f"{extra}: {r}")
        check(r["bytes_sent"] >= r["bytes"], f"{extra}: {r}")
    # Clients that leave and come back: clean reconnects, nothing lost.
    for extra in ([], ["-p", "4"], ["-r", "2000"]):
        rc, r, err = run_json("-c", 8, "-d", 0.5, "-w", 0, "--churn", 0.1, *extra,
                              f"127.0.0.1:{srv.port}")
        check(rc == 0 and r["reconnects"] > 10 and r["errors"] == 0 and r["bad"] == 0,
              f"churn {extra}: rc {rc} {r} {err}")


def test_verify():
    """A server that changes one byte in its 50th answer is caught."""
    def corrupting(conn):
        answers = 0
        while data := conn.recv(64):
            answers += 1
            if answers == 50:
                data = data[:10] + bytes([data[10] ^ 1]) + data[11:]
            conn.sendall(data)

    srv = Server(corrupting)
    rc, r, err = run_json("-c", 1, "-d", 0.5, "-w", 0, f"127.0.0.1:{srv.port}")
    check(rc == 3 and r["bad"] == 1 and r["errors"] == 0, f"rc {rc}: {r}")


HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!"


def http(conn):
    buf = b""
    while data := conn.recv(65536):
        buf += data
        out = []
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            line = buf[:buf.find(b"\r\n")].decode()
            buf = buf[end + 4:]
            path = line.split()[1]
            if path == "/plaintext":
                out.append(HELLO)
            elif path.startswith("/bytes/"):
                n = int(path[7:])
                out.append(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % n + b"x" * n)
            elif path == "/close":
                out.append(HELLO.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n"))
                conn.sendall(b"".join(out))
                return
            else:
                out.append(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        conn.sendall(b"".join(out))


def test_http():
    srv = Server(http)
    base = f"http://localhost:{srv.port}"
    for path, extra in (("/plaintext", []), ("/plaintext", ["-p", "8"]),
                        ("/bytes/200000", ["-c", "2"]), ("/close", [])):
        rc, r, err = run_json("-c", 4, "-d", 0.5, "-w", 0.1, *extra, base + path)
        check(rc == 0, f"{path} {extra}: rc {rc} {err}")
        check(r["requests"] > 10 and r["errors"] == 0 and r["bad"] == 0, f"{path}: {r}")
        if path.startswith("/bytes/"):
            check(r["bytes"] >= r["requests"] * 200000, f"{path}: {r}")
    rc, r, err = run_json("-c", 2, "-d", 0.3, "-w", 0, base + "/missing")
    check(rc == 3 and r["bad"] >= r["requests"] > 0, f"404s are counted: rc {rc} {r}")


def test_open_loop():
    """One 300 ms stall: a closed loop records one slow request; the open
    loop records every request that was due during the stall."""
    def stalling(conn):
        start = time.monotonic()
        stalled = False
        while data := conn.recv(65536):
            if not stalled and time.monotonic() - start > 0.5:
                stalled = True
                time.sleep(0.3)
            conn.sendall(data)

    results = {}
    for name, extra in (("closed", []), ("open", ["-r", 500])):
        srv = Server(stalling)
        rc, r, err = run_json("-c", 1, "-d", 1.5, "-w", 0, *extra, f"127.0.0.1:{srv.port}")
        check(rc == 0, f"{name}: rc {rc} {err}")
        results[name] = r
    closed, open_ = results["closed"], results["open"]
    check(open_["max_us"] > 250000 and closed["max_us"] > 250000, f"stall seen: {results}")
    # 500/s for 1.5 s is 750 requests; ~150 were due during the stall.
    check(abs(open_["requests"] - 750) < 80, f"open loop keeps its rate: {open_}")
    check(open_["p90_us"] > 50000, f"open loop: the stall shows at p90: {open_}")
    check(closed["p99_us"] < 50000, f"closed loop hides the stall below p99.99: {closed}")


def test_outputs():
    srv = Server(echo)
    tmp = os.environ.get("TMPDIR", "/tmp")
    hgrm, svg = f"{tmp}/uco-lat-{os.getpid()}.hgrm", f"{tmp}/uco-lat-{os.getpid()}.svg"
    try:
        rc, out, err = run("-c", 2, "-d", 0.5, "-w", 0.1, "--hgrm", hgrm, "--svg", svg,
                           f"127.0.0.1:{srv.port}")
        check(rc == 0, f"rc {rc} {err}")
        check("req/s" in out and "p99.9" in out and "p99.99" in out and "max" in out, out)
        lines = open(hgrm).read().splitlines()
        check(lines[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"],
              lines[0])
        rows = [l.split() for l in lines[2:] if l and not l.startswith("#")]
        check(float(rows[-1][1]) == 1.0, rows[-1])
        check(all(float(a[1]) < float(b[1]) for a, b in zip(rows, rows[1:])), "percentiles rise")
        check(any(l.startswith("#[Max") for l in lines), "footer")
        root = ET.parse(svg).getroot()
        check(root.tag.endswith("svg"), root.tag)
        texts = [t.text for t in root.iter() if t.tag.endswith("text")]
        check("99.9%" in texts and "latency (us)" in texts, texts)
        check(any(e.tag.endswith("polyline") for e in root.iter()), "a line is drawn")
    finally:
        for f in (hgrm, svg):
            if os.path.exists(f):
                os.unlink(f)


def test_fields():
    """The client's CPU per request, its send lag, its tick and the backend
    its loops run on: present, consistent with each other, and in range
    (never compared with a speed)."""
    srv = Server(echo)
    target = f"127.0.0.1:{srv.port}"
    for name, extra in (("closed", []), ("open", ["-r", 2000]),
                        ("open, tick", ["-r", 2000, "--tick", 10, "-p", 2, "-t", 2])):
        rc, r, err = run_json("-c", 4, "-d", 0.5, "-w", 0.1, *extra, target)
        check(rc == 0 and r["requests"] > 10, f"{name}: rc {rc} {r} {err}")
        user, sys_ = r["cpu_user_s"], r["cpu_sys_s"]
        # Answers were received and checked in the measured interval: that
        # took some CPU, and no more than the threads could spend in it.
        check(user >= 0 and sys_ >= 0 and user + sys_ > 0, f"{name}: {r}")
        check(user + sys_ <= r["threads"] * (r["duration_s"] + 0.5), f"{name}: {r}")
        per = (user + sys_) * 1e6 / r["requests"]
        check(abs(r["cpu_us_per_request"] - per) <= 0.002 + per * 1e-3, f"{name}: {r}")
        check(r["backend"] in ("io_uring", "epoll"), f"{name}: {r}")
        check(r["backend_why"] is None or isinstance(r["backend_why"], str), f"{name}: {r}")
        lag = r["max_send_lag_us"]
        if name == "closed":
            check(lag == 0 and r["tick_us"] == 0, f"closed loop has no schedule: {r}")
        else:
            # No send can be later than the whole run.
            check(0 <= lag < 0.6e6, f"{name}: {r}")
            check(r["tick_us"] == (10 if "--tick" in extra else 50), f"{name}: {r}")
    rc, out, err = run("-c", 2, "-d", 0.3, "-w", 0, "-r", 1000, target)
    check(rc == 0 and "us per request" in out and "backend" in out and
          "behind schedule" in out, f"the summary says it: {out!r} {err!r}")
    # --backend: the loops are made with the backend asked for, and say
    # which one runs them.  UCO_BACKEND in the environment overrides the
    # flag; io_uring can be refused (a seccomp profile), which is said.
    env = os.environ.get("UCO_BACKEND")
    for want in ("auto", "io_uring", "epoll"):
        rc, r, err = run_json("-c", 2, "-d", 0.2, "-w", 0, "--backend", want, target)
        if rc == 1 and want == "io_uring":
            check("io_uring" in err, f"a refused ring is explained: {err!r}")
            continue
        check(rc == 0 and r["backend"] in ("io_uring", "epoll"), f"{want}: rc {rc} {r} {err}")
        if want == "io_uring" and not env:
            check(r["backend"] == "io_uring" and r["backend_why"] is None, f"{want}: {r}")
        if want == "epoll" and not env:
            check(r["backend"] == "epoll" and r["backend_why"] is None, f"{want}: {r}")
        if r["backend"] == "io_uring":
            check(r["backend_why"] is None, f"{want}: no fallback, no reason: {r}")
    for args in (["--backend", "kqueue"], ["--tick", "-1"]):
        rc, out, err = run(*args, target)
        check(rc == 2 and args[0] in err, f"{args}: rc {rc} {err!r}")


def test_progress():
    """A progress line on a terminal, none through a pipe."""
    srv = Server(echo)
    args = [LAT, "-c", "2", "-d", "2.2", "-w", "0", f"127.0.0.1:{srv.port}"]
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    p.wait(timeout=30)
    os.close(master)
    check(p.returncode == 0, f"rc {p.returncode}")
    check(b"\r" in seen and b"req/s" in seen, f"progress on a terminal: {seen!r}")
    rc, out, err = run("-c", 2, "-d", 1.2, "-w", 0, f"127.0.0.1:{srv.port}")
    check(rc == 0 and "req/s" not in err, f"no progress through a pipe: {err!r}")


def test_errors():
    for args, why in ((["-c", "0", "x:1"], "connections"), (["-d", "-1", "x:1"], "duration"),
                      (["nohost"], "HOST:PORT"), (["ftp://x/"], "HOST:PORT"),
                      ([], "no target"), (["-t", "4", "-c", "2", "x:1"], "threads")):
        rc, out, err = run(*args)
        check(rc == 2 and why in err, f"{args}: rc {rc}, {err!r}")
    rc, out, err = run("-d", 0.2, "host.invalid:80")
    check(rc == 1 and "cannot resolve host.invalid" in err, f"rc {rc} {err!r}")
    # Nobody listens: each connect fails and is counted; the run still ends.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    rc, r, err = run_json("-c", 2, "-d", 0.3, "-w", 0, f"127.0.0.1:{port}")
    check(rc == 3 and r["errors"] > 0 and r["requests"] == 0, f"refused: rc {rc} {r}")


if __name__ == "__main__":
    globals()["test_" + sys.argv[2]]()
    print("ok")
