#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""uco-lat https:// and tls:// targets, against uco-http --tls and
uco-echo --tls: every answer checked, keep-alive, pipelining, churn (a
handshake per reconnect), and a certificate the client does not trust.

usage: test_lat_tls.py UCO_LAT UCO_HTTP UCO_ECHO"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tls_common import check, fail, make_cert  # noqa: E402

LAT, HTTP, ECHO = sys.argv[1:4]


def start(argv, pattern):
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 10
    for line in p.stderr:
        m = re.search(pattern, line)
        if m:
            return p, int(m.group(1))
        check(time.monotonic() < end, "no start-up line")
    fail(f"{argv[0]} did not start")


def lat(*args):
    p = subprocess.run([LAT, "-q", "-d", "0.5", "-w", "0.1", *args],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def ok(*args):
    rc, out, err = lat(*args)
    check(rc == 0, f"uco-lat {args}: exit {rc}\n{out}{err}")
    m = re.search(r"(\d+) requests in", out)
    check(m and int(m.group(1)) > 0, f"uco-lat {args}: no requests: {out}")
    check("errors 0" in out, f"uco-lat {args}: errors: {out}")


def main():
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        http, hport = start([HTTP, "--port", "0", "--addr", "127.0.0.1", "--tls", cert, key],
                            r"port (\d+)")
        echo, eport = start([ECHO, "--port", "0", "--addr", "127.0.0.1", "--tcp",
                             "--tls", cert, key], r"listening on 127\.0\.0\.1:(\d+)")
        try:
            ok("-c", "4", "--tls-ca", cert, f"https://localhost:{hport}/plaintext")
            ok("-c", "2", "-p", "8", "--tls-ca", cert, f"https://127.0.0.1:{hport}/bytes/20000")
            ok("-c", "2", "--churn", "0.2", "--tls-ca", cert,
               f"https://localhost:{hport}/plaintext")
            ok("-c", "4", "-s", "1000", "--tls-ca", cert, f"tls://localhost:{eport}")
            ok("-c", "2", "-r", "500", "--tls-ca", cert, f"tls://localhost:{eport}")
            ok("-c", "2", "--tls-insecure", f"tls://127.0.0.1:{eport}")
            # Not trusted: no answer, and the reason said once.
            rc, out, err = lat("-c", "2", f"https://localhost:{hport}/plaintext")
            check(rc == 3, f"untrusted: exit {rc}: {out}{err}")
            check("certificate verify failed: self-signed certificate" in err, err)
        finally:
            for p in (http, echo):
                p.terminate()
                p.wait(5)
    print("ok")


main()
