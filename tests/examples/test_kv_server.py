#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The example key-value server (tests/examples/kv_server.c) driven by real
clients: the commands one by one, a command sent a byte at a time, a
pipelined batch of thousands, many connections at once, a client that
pipelines without reading (back-pressure), a line over the limit, and
SIGTERM.

usage: test_kv_server.py KV_SERVER"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from common import check, fail  # noqa: E402

SERVER = sys.argv[1]


def start():
    proc = subprocess.Popen([SERVER, "0"], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        fail(f"no start-up line: {line!r}")
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    return proc, int(m.group(1))


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return s, s.makefile("rb")


def ask(s, f, cmd):
    s.sendall(cmd.encode() + b"\n")
    return f.readline().decode()


def one_by_one(port):
    s, f = connect(port)
    check(ask(s, f, "GET a") == "NOT_FOUND\n", "GET of a missing key")
    check(ask(s, f, "SET a hello world") == "OK\n", "SET")
    check(ask(s, f, "GET a") == "VALUE hello world\n", "GET gives the whole value")
    check(ask(s, f, "SET a  two") == "OK\n", "SET over a key")
    check(ask(s, f, "GET a") == "VALUE two\n", "the new value")
    check(ask(s, f, "SET e ") == "OK\n", "an empty value")
    check(ask(s, f, "GET e") == "VALUE \n", "the empty value")
    check(ask(s, f, "DEL a") == "DELETED\n", "DEL")
    check(ask(s, f, "DEL a") == "NOT_FOUND\n", "DEL again")
    check(ask(s, f, "") == "ERROR unknown command\n", "an empty line")
    check(ask(s, f, "FROB x") == "ERROR unknown command\n", "an unknown command")
    check(ask(s, f, "GET e\r") == "VALUE \n", "CRLF lines")
    check(ask(s, f, "QUIT") == "BYE\n", "QUIT")
    check(f.read() == b"", "the server closed after QUIT")
    s.close()


def byte_at_a_time(port):
    s, f = connect(port)
    for b in b"SET slow 1234567890\nGET slow\n":
        s.send(bytes([b]))
        time.sleep(0.001)
    check(f.readline() == b"OK\n", "SET sent a byte at a time")
    check(f.readline() == b"VALUE 1234567890\n", "GET sent a byte at a time")
    s.close()


def pipelined(port, n=5000):
    s, f = connect(port)
    batch = b"".join(b"SET p%d v%d\nGET p%d\n" % (i, i * 7, i) for i in range(n))
    sender = threading.Thread(target=s.sendall, args=(batch,))
    sender.start()
    for i in range(n):
        check(f.readline() == b"OK\n", f"pipelined SET {i}")
        got = f.readline()
        check(got == b"VALUE v%d\n" % (i * 7), f"pipelined GET {i}: {got!r}")
    sender.join()
    s.close()


def many_connections(port, n=200):
    conns = [connect(port) for _ in range(n)]
    for i, (s, _) in enumerate(conns):
        s.sendall(b"SET c%d from-%d\n" % (i, i))
    for i, (_, f) in enumerate(conns):
        check(f.readline() == b"OK\n", f"connection {i}: SET")
    # Each reads what another wrote.
    for i, (s, _) in enumerate(conns):
        s.sendall(b"GET c%d\nDEL c%d\n" % ((i + 1) % n, (i + 1) % n))
    for i, (s, f) in enumerate(conns):
        j = (i + 1) % n
        got = f.readline()
        check(got == b"VALUE from-%d\n" % j, f"connection {i}: GET c{j}: {got!r}")
        check(f.readline() == b"DELETED\n", f"connection {i}: DEL")
        s.close()


def not_reading(port):
    """A client that pipelines 4 MB of GETs without reading: the server
    stops reading it (drain) instead of buffering every reply, and gives
    every reply once the client reads."""
    s, f = connect(port)
    value = "x" * 1000
    check(ask(s, f, "SET big " + value) == "OK\n", "SET big")
    n = 4000
    batch = b"GET big\n" * n
    sender = threading.Thread(target=s.sendall, args=(batch,))
    sender.start()
    time.sleep(0.2)  # the replies (4 MB) fill the socket buffers meanwhile
    for i in range(n):
        check(f.readline() == b"VALUE " + value.encode() + b"\n", f"reply {i}")
    sender.join()
    s.close()


def too_long(port):
    s, f = connect(port)
    s.sendall(b"SET long " + b"y" * 5000 + b"\n")
    check(f.readline() == b"ERROR line too long\n", "a line over the limit")
    check(f.read() == b"", "then the connection is closed")
    s.close()
    s, f = connect(port)
    check(ask(s, f, "SET fits " + "z" * 4000) == "OK\n", "a line under the limit")
    s.close()


def main():
    proc, port = start()
    try:
        one_by_one(port)
        byte_at_a_time(port)
        pipelined(port)
        many_connections(port)
        not_reading(port)
        too_long(port)
        # An idle connection open at SIGTERM: the server still ends.
        idle, _ = connect(port)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        check(code == 0, f"exit status {code} after SIGTERM")
        idle.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    print("ok")


main()
