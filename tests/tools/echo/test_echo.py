#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""uco-echo against clients nobody here wrote (sockperf) and against
Python sockets that check every byte: plain TCP and UDP echo, sockperf's
framing, the real sockperf client in its three modes, --threads, bad
options and the signals that stop it.

usage: test_echo.py UCO_ECHO TEST"""
import os
import random
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import check, fail  # noqa: E402

ECHO = sys.argv[1]
SKIP = 77  # meson's exit status for a skipped test


class Server:
    """uco-echo on 127.0.0.1, on a port the kernel picks (--port 0): the
    port is read from its start-up line, so no two tests can collide."""

    def __init__(self, *args):
        self.args = args
        self.proc = subprocess.Popen(
            [ECHO, "--addr", "127.0.0.1", "--port", "0", *map(str, args)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.port = None
        deadline = time.monotonic() + 10
        for line in self.proc.stderr:  # the tool prints the line, then serves
            self.lines.append(line)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
            check(time.monotonic() < deadline, "no start-up line in 10 s")
        if self.port is None:
            self.proc.wait(5)
            fail(f"uco-echo {args} did not start (exit {self.proc.returncode}): "
                 f"{''.join(self.lines)!r}")
        # Keep draining stderr, so that the tool never blocks on a full pipe.
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        if "--udp" not in args:
            self.wait_tcp()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_tcp(self):
        """Until the port accepts (it already should: it listens first)."""
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError as e:
                check(time.monotonic() < deadline, f"port {self.port} never accepted: {e}")
                time.sleep(0.02)

    def stderr(self):
        return "".join(self.lines)

    def stop(self, sig=signal.SIGINT):
        """Signal it; it must exit 0 within 5 s."""
        check(self.proc.poll() is None,
              f"uco-echo died early (exit {self.proc.returncode}): {self.stderr()!r}")
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail(f"uco-echo did not exit within 5 s of {sig.name}: {self.stderr()!r}")
        self.reader.join(2)
        check(rc == 0, f"uco-echo exited {rc} after {sig.name}: {self.stderr()!r}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    # Each send leaves as its own segment: splits reach the server as splits.
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        check(chunk, f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


# ---------------------------------------------------------------- plain echo

def echo_streams(port, sizes, rng, piece_max):
    """One connection per size, all at once in one selector loop: each
    sends its random bytes in random pieces and must read back exactly
    them.  The client never blocks, so the server's flow control is free
    to push back."""
    sel = selectors.DefaultSelector()
    conns = []
    for size in sizes:
        s = tcp(port)
        s.setblocking(False)
        c = {"s": s, "out": rng.randbytes(size), "sent": 0, "got": bytearray()}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    pending = len(conns)
    deadline = time.monotonic() + 15
    while pending:
        check(time.monotonic() < deadline,
              f"{pending} connections still waiting for their echo after 15 s")
        for key, ev in sel.select(1):
            c = key.data
            if ev & selectors.EVENT_WRITE:
                n = rng.randint(1, piece_max)
                try:
                    c["sent"] += c["s"].send(c["out"][c["sent"]:c["sent"] + n])
                except BlockingIOError:
                    pass
                if c["sent"] == len(c["out"]):
                    sel.modify(c["s"], selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                try:
                    data = c["s"].recv(65536)
                except BlockingIOError:
                    continue
                check(data, f"the server closed a connection after "
                            f"{len(c['got'])} of {len(c['out'])} bytes")
                c["got"] += data
                check(len(c["got"]) <= len(c["out"]), "more bytes came back than were sent")
                if len(c["got"]) == len(c["out"]):
                    check(c["got"] == c["out"], "the echo differs from what was sent")
                    sel.unregister(c["s"])
                    c["s"].close()
                    pending -= 1


def test_tcp():
    rng = random.Random(1)
    for args in ([], ["--plain-recv"]):
        srv = Server("--tcp", *args)
        try:
            # 64 connections of up to 64 KiB in pieces of up to 4 KiB, one
            # of 4 MiB (beyond any socket buffer: flow control, many ring
            # buffers), and byte-by-byte ones: splits of every size.
            sizes = [rng.randint(1, 65536) for _ in range(64)] + [4 << 20]
            echo_streams(srv.port, sizes, rng, 4096)
            echo_streams(srv.port, [300] * 4, rng, 1)
            # A connection that closes at once, one that resets: the others
            # go on.
            tcp(srv.port).close()
            s = tcp(srv.port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(b"x" * 1000)
            s.close()
            echo_streams(srv.port, [1000], rng, 100)
        except BaseException:
            srv.kill()
            raise
        srv.stop()
        check("tcp receive: " + ("uco_recv" if args else "multishot") in srv.stderr(),
              f"start-up does not say the receive path: {srv.stderr()!r}")
        print(f"tcp{' ' + args[0] if args else ''}: 70 connections echoed byte for byte")


def test_slow_reader():
    """A client that sends without reading would hold all of a loop's
    provided buffers (the kernel keeps receiving for it while its echo
    waits): it is dropped after 2 s, and another connection of the loop
    is answered, at the latest then (at once with --plain-recv, where each
    connection has its own buffer)."""
    for args in ([], ["--plain-recv"]):
        srv = Server("--tcp", *args)
        try:
            hog = tcp(srv.port)
            hog.setblocking(False)
            start = time.monotonic()
            pinger, got = None, b""
            dropped = answered = None
            while dropped is None or answered is None:
                now = time.monotonic() - start
                check(now < 8, f"after 8 s: hog dropped {dropped}, ping answered {answered}")
                if pinger is None and now > 0.5:
                    pinger = tcp(srv.port)
                    pinger.setblocking(False)
                    pinger.send(b"ping")
                    pinged = now
                if pinger is not None and answered is None:
                    try:
                        got += pinger.recv(10)
                        check(got and b"ping".startswith(got), f"the ping came back as {got!r}")
                        if got == b"ping":
                            answered = now - pinged
                    except BlockingIOError:
                        pass
                if dropped is None:
                    try:
                        hog.send(b"x" * 65536)
                        continue
                    except BlockingIOError:
                        pass
                    except OSError:  # reset: the server dropped it
                        dropped = now
                time.sleep(0.01)
            check(dropped >= 1.9, f"the hog was dropped after {dropped:.2f} s, before 2 s")
            if args:
                check(answered < 0.5, f"--plain-recv: the ping waited {answered:.2f} s")
            else:
                check(pinged + answered < dropped + 1,
                      f"the ping was answered {answered:.2f} s after it was sent, "
                      f"long after the hog was dropped ({dropped:.2f} s)")
            pinger.close()
        except BaseException:
            srv.kill()
            raise
        srv.stop()
        check("dropped a client that sends but has read nothing" in srv.stderr(),
              f"uco-echo did not say why it dropped the client: {srv.stderr()!r}")
        print(f"slow reader{' ' + args[0] if args else ''}: dropped after {dropped:.2f} s; "
              f"another connection answered {answered:.2f} s after its ping")


def udp_roundtrip(s, port, payload):
    s.sendto(payload, ("127.0.0.1", port))
    data, addr = s.recvfrom(70000)
    check(addr == ("127.0.0.1", port), f"the answer came from {addr}")
    return data


def test_udp():
    rng = random.Random(2)
    srv = Server("--udp")
    try:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
        for s in socks:
            s.settimeout(2)
        sizes = [0, 1, 14, 64, 1472, 1473, 9000, 65507]
        n = 0
        for s in socks:
            for size in sizes + [rng.randint(0, 4096) for _ in range(20)]:
                payload = rng.randbytes(size)
                check(udp_roundtrip(s, srv.port, payload) == payload,
                      f"a {size}-byte datagram came back different")
                n += 1
        # A burst on one socket: every datagram answered (loopback does not
        # drop 64 small ones), each intact.
        s = socks[0]
        burst = [struct.pack(">I", i) + rng.randbytes(60) for i in range(64)]
        for p in burst:
            s.sendto(p, ("127.0.0.1", srv.port))
        got = sorted(s.recvfrom(100)[0] for _ in burst)
        check(got == sorted(burst), "a burst of 64 datagrams did not all come back intact")
    except BaseException:
        srv.kill()
        raise
    srv.stop()
    print(f"udp: {n} datagrams of 0 to 65507 bytes and a burst of 64 echoed")


# ---------------------------------------------------------------- sockperf's framing

CLIENT, PONG, WARMUP = 1, 2, 4


def sp_msg(seq, flags, size, rng):
    """A sockperf message: u64 seq, u16 flags, u32 length (whole message),
    big-endian, then the payload."""
    return struct.pack(">QHI", seq, flags, size) + rng.randbytes(size - 14)


def sp_reply(msg):
    flags = struct.unpack_from(">H", msg, 8)[0]
    return msg[:8] + struct.pack(">H", flags & ~CLIENT) + msg[10:]


def wants_reply(flags):
    return flags & (CLIENT | PONG | WARMUP) == CLIENT | PONG


def check_closed(s, what):
    s.settimeout(3)
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b""
    except socket.timeout:
        fail(f"the server kept a connection open after {what}")
    check(data == b"", f"the server answered {what}: {data!r}")


def test_sockperf_framing():
    rng = random.Random(3)
    for args in ([], ["--plain-recv"]):
        srv = Server("--sockperf", *args)
        try:
            s = tcp(srv.port)
            # Three pings in one write: three answers, client bit cleared.
            pings = [sp_msg(i, CLIENT | PONG, 64, rng) for i in (1, 2, 3)]
            s.sendall(b"".join(pings))
            check(recv_exact(s, 192) == b"".join(map(sp_reply, pings)),
                  "three coalesced pings were not answered as sockperf's server does")
            # 300 messages of every kind, 14 bytes to 9 KiB, cut at random
            # places: only those that ask are answered, in order, whole.
            msgs, want = [], []
            for i in range(300):
                flags = rng.choice([CLIENT | PONG, CLIENT, CLIENT | PONG | WARMUP,
                                    PONG, 0, CLIENT | WARMUP])
                m = sp_msg(100 + i, flags, rng.choice([14, 15, 64, 1000, 9000]), rng)
                msgs.append(m)
                if wants_reply(flags):
                    want.append(sp_reply(m))
            marker = sp_msg(10**9, CLIENT | PONG, 20, rng)
            stream = b"".join(msgs) + marker
            want = b"".join(want) + sp_reply(marker)
            pos = 0
            while pos < len(stream):
                n = rng.choice([1, 2, 13, 14, 15, 100, 5000])
                s.sendall(stream[pos:pos + n])
                pos += n
                if rng.random() < 0.05:
                    time.sleep(0.001)  # so some pieces arrive on their own
            check(recv_exact(s, len(want)) == want,
                  "the answers to 300 split messages differ from sockperf's")
            # The largest message sockperf sends, byte by byte at first.
            big = sp_msg(7, CLIENT | PONG, 65507, rng)
            for b in big[:20]:
                s.send(bytes([b]))
            s.sendall(big[20:])
            check(recv_exact(s, 65507) == sp_reply(big), "a 65507-byte message came back wrong")
            # Lengths sockperf refuses: the server closes the connection;
            # the first connection is served still.
            for bad in (13, 65508):
                b = tcp(srv.port)
                b.sendall(struct.pack(">QHI", 1, CLIENT | PONG, bad) + b"x" * 50)
                check_closed(b, f"a message of length {bad}")
                b.close()
            s.sendall(pings[0])
            check(recv_exact(s, 64) == sp_reply(pings[0]), "the first connection stopped")
            s.close()
        except BaseException:
            srv.kill()
            raise
        srv.stop()

    # UDP: one message per datagram.
    srv = Server("--sockperf", "--udp")
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(2)
        p = sp_msg(1, CLIENT | PONG, 64, rng)
        check(udp_roundtrip(u, srv.port, p) == sp_reply(p), "a UDP ping was not answered")
        # None of these may be answered: the next answer is the ping's.
        for junk in (sp_msg(2, CLIENT, 64, rng), sp_msg(3, PONG, 64, rng),
                     sp_msg(4, CLIENT | PONG | WARMUP, 64, rng), b"short",
                     struct.pack(">QHI", 5, CLIENT | PONG, 100) + b"x" * 50):
            u.sendto(junk, ("127.0.0.1", srv.port))
        p = sp_msg(6, CLIENT | PONG, 65507, rng)
        check(udp_roundtrip(u, srv.port, p) == sp_reply(p),
              "a UDP message that asks for no answer got one (or 65507 bytes failed)")
    except BaseException:
        srv.kill()
        raise
    srv.stop()
    print("sockperf framing: split, coalesced, refused and UDP messages answered as sockperf sr")


# ---------------------------------------------------------------- the real sockperf

def sockperf(mode, proto, port, *extra):
    cmd = ["sockperf", mode, "-i", "127.0.0.1", "-p", str(port), "-t", "1", *extra]
    if proto == "tcp":
        cmd.append("--tcp")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=15)
    out = re.sub(r"\x1b\[[0-9;]*m", "", p.stdout)  # its colours
    check(p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}:\n{out}")
    check("No messages were received" not in out,
          f"sockperf {mode} counted no reply from uco-echo:\n{out}")
    return out


def valid_counts(out):
    m = re.search(r"\[Valid Duration\] RunTime=[\d.]+ sec; SentMessages=(\d+); "
                  r"ReceivedMessages=(\d+)", out)
    check(m, f"no [Valid Duration] line:\n{out}")
    return int(m.group(1)), int(m.group(2))


def latency(out):
    avg = re.search(r"Summary: Latency is ([\d.]+) usec", out)
    pct = dict(re.findall(r"percentile (\d+\.\d+) =\s+([\d.]+)", out))
    check(avg and "50.000" in pct and "99.000" in pct, f"no latency summary:\n{out}")
    return float(avg.group(1)), float(pct["50.000"]), float(pct["99.000"])


def losses(out):
    m = re.search(r"# dropped messages = (\d+); # duplicated messages = (\d+); "
                  r"# out-of-order messages = (\d+)", out)
    check(m, f"no dropped/duplicated/out-of-order line:\n{out}")
    return tuple(map(int, m.groups()))


def sockperf_ping(srv, proto):
    """A short ping over a fresh socket: the server still answers."""
    rng = random.Random(9)
    p = sp_msg(1, CLIENT | PONG, 64, rng)
    if proto == "tcp":
        s = tcp(srv.port)
        s.sendall(p)
        got = recv_exact(s, 64)
        s.close()
    else:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(2)
        got = udp_roundtrip(u, srv.port, p)
    check(got == sp_reply(p), "uco-echo stopped answering after the run")


def test_sockperf(mode, proto):
    if not shutil.which("sockperf"):
        print("SKIP: sockperf is not installed (Debian: apt install sockperf)")
        sys.exit(SKIP)
    srv = Server("--sockperf", "--" + proto)
    try:
        if mode == "ping-pong":
            out = sockperf(mode, proto, srv.port, "-m", "64")
            sent, got = valid_counts(out)
            avg, p50, p99 = latency(out)
            check(got > 100, f"only {got} replies in the measured second:\n{out}")
            # One message in flight: every one is answered (UDP on loopback
            # drops none at this pace; leave it a margin all the same).
            check(got == sent if proto == "tcp" else got >= 0.95 * sent,
                  f"{got} replies to {sent} messages:\n{out}")
            if proto == "tcp":
                check(losses(out) == (0, 0, 0), f"losses over TCP:\n{out}")
            print(f"sockperf ping-pong {proto}: {got}/{sent} replies, "
                  f"avg {avg} us, p50 {p50} us, p99 {p99} us")
        elif mode == "throughput":
            out = sockperf(mode, proto, srv.port, "-m", "64")
            m = re.search(r"Summary: Message Rate is (\d+) \[msg/sec\]", out)
            check(m and int(m.group(1)) > 1000, f"no message rate:\n{out}")
            # Nothing asked for an answer; the server must have read it all
            # as sockperf messages, and must still answer.
            sockperf_ping(srv, proto)
            print(f"sockperf throughput {proto}: {m.group(1)} msg/s")
        else:
            out = sockperf(mode, proto, srv.port, "--mps", "10000", "--reply-every", "10")
            sent, got = valid_counts(out)
            avg, p50, p99 = latency(out)
            # Every 10th message asks for an answer: an echo of all of them
            # would show ten times as many (or sockperf would complain).
            # Over UDP a loaded machine drops datagrams (sockperf counts the
            # replies it missed): those count as answered-and-lost.
            dropped = losses(out)[0] if proto == "udp" else 0
            check(got > 0 and 0.8 * sent / 10 <= got + dropped and got <= sent / 10 + 2,
                  f"{got} replies to {sent} messages, one in 10 asking:\n{out}")
            print(f"sockperf under-load {proto}: {got} replies to {sent} messages, "
                  f"avg {avg} us, p50 {p50} us, p99 {p99} us")
    except BaseException:
        srv.kill()
        raise
    srv.stop()
    check("does not speak sockperf" not in srv.stderr(),
          f"uco-echo misread sockperf's stream: {srv.stderr()!r}")


# ---------------------------------------------------------------- threads, options, signals

def listeners(port, proto):
    """Sockets bound to port in /proc/net/{tcp,udp} (listening, for TCP)."""
    n = 0
    with open(f"/proc/net/{proto}") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if int(local.split(":")[1], 16) == port and (proto == "udp" or state == "0A"):
                n += 1
    return n


def test_threads():
    rng = random.Random(4)
    srv = Server("--threads", "2", "--sockperf")
    try:
        check(listeners(srv.port, "tcp") == 2 and listeners(srv.port, "udp") == 2,
              "--threads 2 should make two TCP listeners and two UDP sockets "
              f"(found {listeners(srv.port, 'tcp')} and {listeners(srv.port, 'udp')})")
        # 64 connections: SO_REUSEPORT spreads them over both loops, so each
        # loop must accept and answer or some of these never get an answer.
        conns = [tcp(srv.port) for _ in range(64)]
        pings = [sp_msg(i, CLIENT | PONG, 64, rng) for i in range(64)]
        for s, p in zip(conns, pings):
            s.sendall(p)
        for s, p in zip(conns, pings):
            check(recv_exact(s, 64) == sp_reply(p), "a connection got a wrong answer")
            s.close()
        # 32 UDP flows, spread over the two sockets by their hash.
        for i in range(32):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(2)
            p = sp_msg(i, CLIENT | PONG, 64, rng)
            check(udp_roundtrip(u, srv.port, p) == sp_reply(p), "a UDP flow got no answer")
            u.close()
        if shutil.which("sockperf"):
            sent, got = valid_counts(sockperf("ping-pong", "tcp", srv.port))
            check(got == sent and got > 0, f"{got} replies to {sent}")
    except BaseException:
        srv.kill()
        raise
    srv.stop()
    print("threads: two listeners of each kind, 64 connections and 32 UDP flows answered")


def run_echo(*args, timeout=10):
    p = subprocess.run([ECHO, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_options():
    bad = [["--port", "70000"], ["--port", "abc"], ["--port", ""], ["--port", "-1"],
           ["--port", "80x"], ["--threads", "0"], ["--threads", "two"],
           ["--threads", "100000"], ["--addr", "localhost"], ["--addr", "1.2.3"],
           ["--bogus"], ["extra"], ["--port"], ["-x"], ["--backend", "kqueue"],
           ["--backend"]]
    for args in bad:
        rc, out, err = run_echo(*args)
        check(rc == 2, f"uco-echo {args} exited {rc}, not 2: {err!r}")
        check(err.strip() and "uco-echo" in err, f"uco-echo {args}: no error message: {err!r}")
    rc, out, err = run_echo("--help")
    check(rc == 0 and "usage: uco-echo" in out and "--sockperf" in out, f"--help: {rc} {out!r}")

    # A port that is taken (without SO_REUSEPORT): exit 1 at once, and say why.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    rc, out, err = run_echo("--addr", "127.0.0.1", "--port", str(taken.getsockname()[1]), "--tcp")
    check(rc == 1 and "Address already in use" in err, f"busy port: {rc} {err!r}")
    taken.close()
    # An address this host does not have.
    rc, out, err = run_echo("--addr", "192.0.2.1", "--port", "0")
    check(rc == 1 and "192.0.2.1" in err, f"foreign address: {rc} {err!r}")
    print(f"options: {len(bad)} bad command lines exit 2 with a message; "
          "a busy port and a foreign address exit 1")


def test_backend():
    """--backend: the start-up line says which backend the loops run on, the
    option overrides UCO_BACKEND in the environment, and TCP and UDP echo."""
    rng = random.Random(12)
    for arg, env in (("io_uring", "epoll"), ("auto", None), ("epoll", None)):
        if arg == "io_uring" and os.environ.get("UCO_TEST_NO_IO_URING"):
            continue  # refused here (tests/tools/no-io-uring)
        old = os.environ.get("UCO_BACKEND")
        if env:
            os.environ["UCO_BACKEND"] = env
        try:
            srv = Server("--backend", arg)
        finally:
            if env and old is None:
                del os.environ["UCO_BACKEND"]
            elif env:
                os.environ["UCO_BACKEND"] = old
        try:
            m = re.search(r", backend (\w+)\)$", srv.lines[-1].strip())
            check(m is not None, f"--backend {arg}: no backend in {srv.lines[-1]!r}")
            got = m.group(1)
            if arg == "auto":
                # io_uring, or epoll where this machine refuses io_uring.
                check(got in ("io_uring", "epoll"), f"--backend auto: {got}")
            else:
                check(got == arg, f"--backend {arg} runs on {got}")
            echo_streams(srv.port, [1, 1000, 100000], rng, 4096)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(5)
            payload = b"backend " + arg.encode()
            check(udp_roundtrip(u, srv.port, payload) == payload, f"--backend {arg}: UDP echo")
            u.close()
            srv.stop()
        finally:
            srv.kill()
        print(f"--backend {arg}: runs on {got}, echoes TCP and UDP")


def test_signals():
    rng = random.Random(5)
    for sig, args in ((signal.SIGINT, []), (signal.SIGTERM, []),
                      (signal.SIGINT, ["--threads", "2", "--sockperf"]),
                      (signal.SIGTERM, ["--plain-recv"])):
        srv = Server(*args)
        try:
            # Connections in every state: idle, half a sockperf message
            # sent, one the client has stopped reading (the server's sends
            # block; pings, so that --sockperf answers them too).
            idle = tcp(srv.port)
            half = tcp(srv.port)
            half.sendall(sp_msg(1, CLIENT | PONG, 64, rng)[:20])
            stuck = tcp(srv.port)
            stuck.setblocking(False)
            ping = sp_msg(2, CLIENT | PONG, 65507, rng)
            sent = 0
            try:
                while True:  # ping after ping, through short sends
                    off = sent % len(ping)
                    sent += stuck.send((ping[off:] + ping)[:65536])
            except BlockingIOError:
                pass
            time.sleep(0.1)
            srv.stop(sig)
            for s in (idle, half, stuck):
                s.close()
        finally:
            srv.kill()
        check("closed a connection" not in srv.stderr(),
              f"a connection failed before the signal: {srv.stderr()!r}")
    print("signals: SIGINT and SIGTERM exit 0 with connections open, 1 or 2 threads")


def main():
    test = sys.argv[2]
    for mode in ("ping-pong", "throughput", "under-load"):
        for proto in ("tcp", "udp"):
            if test == f"sockperf-{mode}-{proto}":
                return test_sockperf(mode, proto)
    tests = {"tcp": test_tcp, "udp": test_udp, "slow-reader": test_slow_reader,
             "sockperf-framing": test_sockperf_framing,
             "threads": test_threads, "options": test_options, "signals": test_signals,
             "backend": test_backend}
    if test not in tests:
        fail(f"no test {test!r}")
    tests[test]()


if __name__ == "__main__":
    main()
