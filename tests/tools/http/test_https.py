#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""uco-http --tls driven by TLS clients nobody here wrote (curl, openssl
s_client, Python's ssl module, wrk) and by raw sockets sending what no
client would (plaintext, garbage, truncated records, silence).  The
certificate is made here with the openssl command.  Exit 77 (skip) when a
client is missing.

usage: test_https.py UCO_HTTP TEST"""
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import test_http as h  # noqa: E402  (Server, check, need, make_root)
from common import run_named  # noqa: E402
from tls_common import make_cert  # noqa: E402

check, fail, need = h.check, h.fail, h.need


class TLSServer(h.Server):
    def url(self, path):
        return f"https://localhost:{self.port}{path}"


def curl(srv, cert, *args, path="/plaintext"):
    need("curl")
    p = subprocess.run(["curl", "-sS", "--cacert", cert, "--resolve",
                        f"localhost:{srv.port}:127.0.0.1", *args, srv.url(path)],
                       capture_output=True, timeout=20)
    check(p.returncode == 0, f"curl {args} {path}: {p.returncode} {p.stderr!r}")
    return p


def client_ctx(cert):
    ctx = ssl.create_default_context(cafile=cert)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def tls_conn(srv, cert):
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    return client_ctx(cert).wrap_socket(raw, server_hostname="localhost")


def read_response(s, buf=b""):
    """(status, body, rest) of one response with a Content-Length."""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            fail(f"connection closed mid-response: {buf!r}")
        buf += b
    head, buf = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"content-length: *(\d+)", head, re.I)
    n = int(m.group(1))
    while len(buf) < n:
        b = s.recv(65536)
        if not b:
            fail("connection closed mid-body")
        buf += b
    return int(head.split()[1]), buf[:n], buf[n:]


def closed_within(s, seconds):
    s.settimeout(seconds)
    try:
        while s.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def test_curl(*extra):
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        root, files = h.make_root(d)
        with TLSServer("--root", root, "--tls", cert, key, *extra) as srv:
            check(curl(srv, cert).stdout == b"Hello, World!", "plaintext")
            check(len(curl(srv, cert, path="/bytes/300000").stdout) == 300000, "bytes")
            # Files: small (with the head) and big (read and sent, no splice).
            for name, (data, _) in files.items():
                got = curl(srv, cert, path=name.replace(" ", "%20")).stdout
                check(got == data, f"/{name}: {len(got)} bytes, want {len(data)}")
            # Keep-alive: two transfers on one connection, ALPN http/1.1.
            p = curl(srv, cert, "-v", srv.url("/bytes/10"), path="/plaintext")
            err = p.stderr.decode(errors="replace")
            check("Re-using existing connection" in err or "Reusing existing" in err,
                  f"curl did not reuse the connection: {err}")
            check("ALPN" in err and "http/1.1" in err, f"no ALPN http/1.1: {err}")
            # A client that does not trust the certificate refuses it.
            need("curl")
            p = subprocess.run(["curl", "-sS", f"https://127.0.0.1:{srv.port}/plaintext"],
                               capture_output=True, timeout=20)
            check(p.returncode == 60, f"curl without the CA: {p.returncode} {p.stderr!r}")
            check(curl(srv, cert).stdout == b"Hello, World!", "after a refusal")


def test_ktls():
    """--ktls: OpenSSL on the socket, the kernel's records where it has the
    TLS ULP (files spliced then), OpenSSL's elsewhere; the same answers."""
    test_curl("--ktls")


def test_s_client():
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        with TLSServer("--tls", cert, key) as srv:
            req = (b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}",
                                "-servername", "localhost", "-CAfile", cert,
                                "-verify_return_error", "-alpn", "http/1.1",
                                "-ign_eof"],
                               input=req, capture_output=True, timeout=20)
            out = p.stdout.decode(errors="replace")
            check(p.returncode == 0, f"s_client: {p.returncode} {p.stderr!r} {out}")
            check(out.count("Hello, World!") == 2, f"two answers pipelined: {out}")
            check("Verify return code: 0 (ok)" in out, f"verification: {out}")
            check("ALPN protocol: http/1.1" in out, f"ALPN: {out}")
            for v in ["-tls1_2", "-tls1_3"]:
                p = subprocess.run(["openssl", "s_client", "-connect",
                                    f"127.0.0.1:{srv.port}", v, "-CAfile", cert,
                                    "-verify_return_error", "-ign_eof"],
                                   input=req, capture_output=True, timeout=20)
                out = p.stdout.decode(errors="replace")
                check(p.returncode == 0 and out.count("Hello, World!") == 2,
                      f"s_client {v}: {p.returncode} {out} {p.stderr!r}")


def test_python_ssl():
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        with TLSServer("--tls", cert, key) as srv:
            # Keep-alive: 200 requests on one connection, some pipelined.
            s = tls_conn(srv, cert)
            check(s.selected_alpn_protocol() == "http/1.1", "ALPN")
            rest = b""
            for i in range(100):
                s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i * 997)
                          + b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                st, body, rest = read_response(s, rest)
                check(st == 200 and body == b"x" * (i * 997), f"bytes {i}")
                st, body, rest = read_response(s, rest)
                check(st == 200 and body == b"Hello, World!", f"plaintext {i}")
            # The server closes with close_notify: unwrap() sees it.
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            st, body, rest = read_response(s, rest)
            check(st == 200, "last")
            check(s.recv(100) == b"", "no close_notify from the server")
            s.close()
            # Request bodies through TLS.
            s = tls_conn(srv, cert)
            body = b"y" * 200000
            s.sendall(b"POST /plaintext HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % len(body) + body + b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, rest = read_response(s)
            check(st == 405, f"POST: {st}")
            st, body, rest = read_response(s, rest)
            check(st == 200 and body == b"Hello, World!", "after a body")
            # A client that leaves without close_notify: nothing breaks.
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            os.close(s.detach())
            s2 = tls_conn(srv, cert)
            s2.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            check(read_response(s2)[1] == b"Hello, World!", "after a rude client")
            s2.close()
            # A client that does not trust the server.
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            try:
                ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
                fail("an untrusted certificate was accepted")
            except ssl.SSLCertVerificationError as e:
                check("self-signed" in str(e) or "self signed" in str(e), str(e))
            raw.close()


def wrk(srv, path, *extra, conns=16):
    need("wrk")
    p = subprocess.run(["wrk", "-t1", f"-c{conns}", "-d1s", *extra,
                        f"https://127.0.0.1:{srv.port}{path}"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"wrk: {p.returncode} {p.stderr}")
    m = re.search(r"(\d+) requests in", p.stdout)
    check(m and int(m.group(1)) > 0, f"wrk {path}: no requests: {p.stdout}")
    check("Non-2xx" not in p.stdout, f"wrk {path}: errors: {p.stdout}")
    # With Connection: close wrk counts the server's close as a read
    # error; any other socket error is a failure.
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                  p.stdout)
    if m:
        c, r, w, t = map(int, m.groups())
        check(c == 0 and w == 0 and t == 0 and (r == 0 or extra),
              f"wrk {path} {extra}: {p.stdout}")
    return p.stdout


def test_wrk():
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        with TLSServer("--tls", cert, key) as srv:
            wrk(srv, "/plaintext")
            wrk(srv, "/bytes/100000", conns=4)
            # A full handshake per request.
            wrk(srv, "/plaintext", "-H", "Connection: close", conns=4)
        with TLSServer("--tls", cert, key, "--threads", "2",
                       "--tls-ciphers", "TLS_AES_128_GCM_SHA256") as srv:
            wrk(srv, "/plaintext")


def test_bad_input():
    """Each bad client gets a clear end (its connection closed, an alert
    where TLS allows one) and the server keeps serving the others."""
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        with TLSServer("--tls", cert, key, "--header-timeout", "0.5") as srv:
            good = tls_conn(srv, cert)

            def still_serving():
                good.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                check(read_response(good)[1] == b"Hello, World!", "a good client failed")
                curl(srv, cert)

            def raw():
                return socket.create_connection(("127.0.0.1", srv.port), timeout=5)

            # Plain HTTP to the TLS port: closed at once (OpenSSL sends no
            # alert to what is not TLS).
            s = raw()
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            check(closed_within(s, 2), "plaintext: not closed")
            s.close()
            still_serving()
            # Garbage in the shape of a record: an alert, then closed.
            s = raw()
            s.sendall(b"\x16\x03\x01\x00\x20" + os.urandom(32))
            s.settimeout(2)
            try:
                got = s.recv(100)
            except ConnectionResetError:
                got = b""
            check(got == b"" or got[:1] == b"\x15", f"garbage: not an alert: {got!r}")
            check(closed_within(s, 2), "garbage: not closed")
            s.close()
            still_serving()
            # A truncated record, then the client goes.
            s = raw()
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00")
            s.close()
            still_serving()
            # Garbage after the handshake: the record's MAC fails.
            t = tls_conn(srv, cert)
            t.fileno()
            sock = socket.socket(fileno=os.dup(t.fileno()))
            sock.sendall(b"\x17\x03\x03\x00\x30" + os.urandom(48))
            check(closed_within(t, 2), "bad record: not closed")
            sock.close()
            t.close()
            still_serving()
            # A client that never finishes the handshake: reaped after
            # --header-timeout.
            s = raw()
            t0 = time.monotonic()
            check(closed_within(s, 5), "silent client: not reaped")
            check(time.monotonic() - t0 >= 0.4, "reaped before the header timeout")
            s.close()
            # One that stops half way through its ClientHello.
            s = raw()
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            hello = client_ctx(cert).wrap_bio(incoming, outgoing, server_hostname="localhost")
            try:
                hello.do_handshake()
            except ssl.SSLWantReadError:
                pass
            data = outgoing.read()
            check(len(data) > 100, f"no ClientHello: {data!r}")
            s.sendall(data[:len(data) // 2])
            check(closed_within(s, 5), "half a hello: not reaped")
            s.close()
            still_serving()
            good.close()


if __name__ == "__main__":
    run_named(globals(), "test_https.py", "UCO_HTTP")
