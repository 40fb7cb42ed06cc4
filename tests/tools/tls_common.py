# SPDX-License-Identifier: MIT
"""What the TLS tests of the tools share: failing, and a test certificate
made with the openssl command (exit 77, skip, without it)."""
import os
import shutil
import subprocess
import sys

from common import check, fail  # noqa: F401  (re-exported)


def make_cert(d):
    """(cert, key): an ECDSA P-256 certificate for localhost and
    127.0.0.1, valid for a day, in directory d."""
    if not shutil.which("openssl"):
        print("SKIP: the openssl command is not installed (Debian package openssl)")
        sys.exit(77)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, timeout=30)
    check(p.returncode == 0, f"openssl req: {p.stderr!r}")
    return cert, key
