#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""uco-echo --tls: Python's ssl module and openssl s_client as clients,
bytes checked; plaintext and garbage to the TLS port end only their own
connection.  The certificate is made here with the openssl command.

usage: test_echo_tls.py UCO_ECHO TEST"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import test_echo as e  # noqa: E402  (Server)
from common import run_named  # noqa: E402
from tls_common import check, make_cert  # noqa: E402



def tls(port, cert):
    ctx = ssl.create_default_context(cafile=cert)
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                           server_hostname="localhost")


def echo_check(s, size):
    """Send size random bytes in 32 KiB steps, each read back before the
    next (an SSL socket is not for two threads at once)."""
    data = os.urandom(size)
    got = bytearray()
    for off in range(0, size, 32768):
        s.sendall(data[off:off + 32768])
        while len(got) < min(size, off + 32768):
            b = s.recv(65536)
            check(b, f"closed after {len(got)} of {size} bytes")
            got.extend(b)
    check(bytes(got) == data, f"echo of {size} bytes differs")


def test_python():
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        srv = e.Server("--tcp", "--tls", cert, key)
        try:
            s = tls(srv.port, cert)
            for size in [1, 100, 16384, 1 << 20]:
                echo_check(s, size)
            s = s.unwrap()  # close_notify both ways
            s.close()
            # Bad input ends its own connection only.
            for bad in [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x20" + os.urandom(32)]:
                r = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                r.sendall(bad)
                try:
                    while r.recv(100):
                        pass
                except ConnectionResetError:
                    pass
                r.close()
            s = tls(srv.port, cert)
            echo_check(s, 5000)
            s.close()
            srv.stop()
            check("TLS:" in srv.stderr(), f"no TLS error named: {srv.stderr()}")
        finally:
            srv.kill()


def test_s_client():
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        srv = e.Server("--tcp", "--tls", cert, key, "--threads", "2")
        try:
            # s_client -quiet waits for the server after stdin's end; a
            # reader that stops at the echo's line ends it instead.
            proc = subprocess.Popen(["openssl", "s_client", "-connect",
                                     f"127.0.0.1:{srv.port}", "-CAfile", cert,
                                     "-verify_return_error", "-quiet"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            proc.stdin.write(b"hello over tls\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            proc.kill()
            proc.wait()
            check(line == b"hello over tls\n", f"s_client got {line!r}")
            srv.stop()
        finally:
            srv.kill()


if __name__ == "__main__":
    run_named(globals(), "test_echo_tls.py", "UCO_ECHO")
