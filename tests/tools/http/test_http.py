#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""uco-http driven by clients nobody here wrote (curl, wrk) and by raw
sockets, for what those clients would not send: routes, static files,
traversal attempts, error statuses, pipelining, request bodies,
keep-alive, timeouts (slowloris), slow readers, threads, signals and the
command line.  Exit 77 (skip) when curl or wrk is missing.

usage: test_http.py UCO_HTTP TEST"""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import check, fail, run_named  # noqa: E402

HTTP = sys.argv[1]
SECRET = b"TOPSECRET-outside-the-root"


def need(tool):
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if os.access(os.path.join(d, tool), os.X_OK):
            return
    print(f"SKIP: {tool} is not installed (Debian package {tool})")
    sys.exit(77)


class Server:
    """uco-http on 127.0.0.1, on a port the kernel picks (--port 0; the
    server says which), its stderr kept for failure messages."""

    def __init__(self, *args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([HTTP, "--port", "0", "--addr", "127.0.0.1", *map(str, args)],
                                     stderr=subprocess.PIPE, env=e)
        self.err = b""
        line = self._line(5)
        if line.startswith(b"uco-http: backend "):  # why AUTO fell back, then 'listening'
            line = self._line(5)
        m = re.search(rb"port (\d+)", line)
        if not m:
            self.proc.kill()
            fail(f"no 'listening' line from uco-http: {line!r} {self.proc.stderr.read()!r}")
        self.port = int(m.group(1))
        self.line = line
        threading.Thread(target=self._drain, daemon=True).start()
        self.wait_port()

    def _line(self, timeout):
        out = b""
        end = time.monotonic() + timeout
        fd = self.proc.stderr.fileno()
        while not out.endswith(b"\n") and time.monotonic() < end:
            if select.select([fd], [], [], 0.1)[0]:
                b = os.read(fd, 1)
                if not b:
                    break
                out += b
        return out

    def _drain(self):
        while True:
            b = os.read(self.proc.stderr.fileno(), 4096)
            if not b:
                return
            self.err += b

    def wait_port(self):
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                check(self.proc.poll() is None, f"uco-http exited: {self.err!r}")
                time.sleep(0.01)
        fail("uco-http does not accept connections")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self, sig=signal.SIGTERM, within=5):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail(f"uco-http did not exit within {within} s of signal {sig}")
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            rc = self.stop()
            if exc[0] is None:
                check(rc == 0, f"uco-http exit status {rc}: {self.err!r}")


def curl(srv, path, *args):
    """(status, headers (lower-case names), body) of one curl transfer.
    With -I (HEAD) curl writes the head where the body would go, so the
    body is given as b"": raw_head() checks that no body is sent."""
    need("curl")
    with tempfile.TemporaryDirectory() as d:
        hdr, body = os.path.join(d, "h"), os.path.join(d, "b")
        p = subprocess.run(["curl", "-sS", "--path-as-is", "-D", hdr, "-o", body, *args,
                            srv.url(path)], capture_output=True, timeout=20)
        check(p.returncode == 0, f"curl {path} {args}: {p.returncode} {p.stderr!r}")
        heads = open(hdr, "rb").read().split(b"\r\n\r\n")
        heads = [h for h in heads if h.strip()]
        lines = heads[-1].decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), v.strip())
        return status, headers, b"" if "-I" in args else open(body, "rb").read()


class Conn:
    """A raw connection that reads responses one at a time."""

    def __init__(self, srv, timeout=5):
        self.s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _more(self):
        b = self.s.recv(1 << 20)
        if not b:
            raise EOFError("connection closed")
        self.buf += b

    def response(self, head=False):
        """(status, headers, body); a HEAD answer has no body."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        h, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = h.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        check(lines[0].startswith("HTTP/1.1 "), f"status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            check(k.lower() not in headers, f"field {k} twice")
            headers[k.lower()] = v.strip()
        n = 0 if head else int(headers["content-length"])
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed_within(self, seconds):
        """True if the server closes (EOF or reset) within seconds; the
        bytes that came first are kept in self.buf."""
        self.s.settimeout(seconds)
        try:
            while True:
                b = self.s.recv(1 << 20)
                if not b:
                    return True
                self.buf += b
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.s.settimeout(5)

    def close(self):
        self.s.close()


def req(path, method="GET", extra="", version="1.1"):
    return f"{method} {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


def raw_head(srv, path):
    """HEAD then GET of path on one connection: the HEAD's headers, after
    checking that they match the GET's and that no body followed them
    (the GET's answer would not parse)."""
    c = Conn(srv)
    c.send(req(path, "HEAD") + req(path))
    st, h, _ = c.response(head=True)
    st2, h2, body = c.response()
    check(st == st2, f"HEAD {path}: {st}, GET: {st2}")
    for k in ("content-length", "content-type"):
        check(h.get(k) == h2.get(k), f"HEAD {path}: {k} {h.get(k)} != {h2.get(k)}")
    check(len(body) == int(h2["content-length"]), f"GET {path} after HEAD: {len(body)}")
    check(not c.closed_within(0.05) and c.buf == b"", f"HEAD {path}: bytes after: {c.buf[:40]!r}")
    c.close()
    return st, h


# ---------------------------------------------------------------- tests


def test_routes():
    with Server() as srv:
        st, h, body = curl(srv, "/plaintext")
        check(st == 200 and body == b"Hello, World!", f"/plaintext: {st} {body!r}")
        check(h["content-type"] == "text/plain" and h["content-length"] == "13", f"{h}")
        check(re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$", h["date"]), f"{h}")
        check(h["server"] == "uco-http", f"{h}")
        st, h, body = curl(srv, "/plaintext", "-I")
        check(st == 200 and h["content-length"] == "13" and body == b"", f"HEAD: {st} {h}")
        for n in (0, 1, 100000, 5000000):
            st, h, body = curl(srv, f"/bytes/{n}")
            check(st == 200 and body == b"x" * n, f"/bytes/{n}: {st} {len(body)}")
            check(h["content-length"] == str(n), f"/bytes/{n}: {h}")
            check(h["content-type"] == "application/octet-stream", f"{h}")
        st, h, body = curl(srv, "/bytes/67108864", "-I")
        check(st == 200 and h["content-length"] == "67108864", f"{st} {h}")
        for path in ("/plaintext", "/bytes/0", "/bytes/70000", "/bytes/x", "/missing"):
            raw_head(srv, path)
        for bad in ("abc", "-1", "1x", "67108865", "99999999999999999999999", ""):
            st, _, _ = curl(srv, f"/bytes/{bad}")
            check(st == 400 if bad else st == 404, f"/bytes/{bad}: {st}")
        st, h, body = curl(srv, "/bytes/abc", "-I")
        check(st == 400 and int(h["content-length"]) > 0, f"HEAD 400: {h}")
        # No --root: every other path is missing.
        for path in ("/", "/index.html", "/plaintext/x"):
            st, _, body = curl(srv, path)
            check(st == 404 and body == b"Not Found\n", f"{path}: {st} {body!r}")
        st, h, _ = curl(srv, "/missing", "-I")
        check(st == 404 and h["content-length"] == "10", f"HEAD 404: {st} {h}")
        # Percent-decoding applies before routing; the query is ignored.
        st, _, body = curl(srv, "/plain%74ext?q=1")
        check(st == 200 and body == b"Hello, World!", f"encoded: {st}")
        for m in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            st, h, _ = curl(srv, "/plaintext", "-X", m)
            check(st == 405 and h["allow"] == "GET, HEAD", f"{m}: {st} {h}")
        # HTTP/1.0: answered, and closed unless asked to keep alive.
        st, h, body = curl(srv, "/plaintext", "-0")
        check(st == 200 and body == b"Hello, World!" and h["connection"] == "close", f"{h}")
        st, h, _ = curl(srv, "/plaintext", "-0", "-H", "Connection: keep-alive")
        check(st == 200 and h["connection"] == "keep-alive", f"1.0 keep-alive: {h}")


def make_root(d):
    """A root with a file of each known type, sizes from 0 to 3 MiB."""
    root = os.path.join(d, "root")
    os.makedirs(os.path.join(root, "dir"))
    os.makedirs(os.path.join(root, "empty"))
    files = {}
    exts = {"html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
            "js": "text/javascript; charset=utf-8", "json": "application/json",
            "txt": "text/plain; charset=utf-8", "png": "image/png", "jpg": "image/jpeg",
            "gif": "image/gif", "svg": "image/svg+xml", "ico": "image/vnd.microsoft.icon",
            "wasm": "application/wasm", "pdf": "application/pdf",
            "bin": "application/octet-stream", "tar.gz": "application/octet-stream"}
    for i, (ext, ctype) in enumerate(exts.items()):
        data = os.urandom([0, 1, 100, 4000, 16384, 20000, 70000, 3 << 20][i % 8])
        files[f"/f{i}.{ext}"] = (data, ctype)
    files["/noext"] = (b"plain bytes", "application/octet-stream")
    files["/index.html"] = (b"<h1>root</h1>\n", "text/html; charset=utf-8")
    files["/dir/index.html"] = (b"<h1>dir</h1>\n", "text/html; charset=utf-8")
    files["/dir/UPPER.PNG"] = (b"\x89PNG", "image/png")
    files["/a b.txt"] = (b"space", "text/plain; charset=utf-8")
    for path, (data, _) in files.items():
        with open(root + path, "wb") as f:
            f.write(data)
    return root, files


def test_static():
    need("curl")
    with tempfile.TemporaryDirectory() as d:
        root, files = make_root(d)
        with Server("--root", root) as srv:
            for path, (data, ctype) in files.items():
                url = path.replace(" ", "%20")
                st, h, body = curl(srv, url)
                check(st == 200, f"{path}: {st}")
                check(h["content-type"] == ctype, f"{path}: {h['content-type']} != {ctype}")
                check(h["content-length"] == str(len(data)), f"{path}: {h}")
                check(body == data, f"{path}: {len(body)} bytes differ from {len(data)}")
                st, h, body = curl(srv, url, "-I")
                check(st == 200 and h["content-length"] == str(len(data)), f"HEAD {path}: {h}")
                st, h = raw_head(srv, url)
                check(st == 200 and h["content-length"] == str(len(data)), f"HEAD {path}: {h}")
            for path, want in (("/", "/index.html"), ("/dir", "/dir/index.html"),
                               ("/dir/", "/dir/index.html"), ("/dir//./", "/dir/index.html")):
                st, h, body = curl(srv, path)
                check(st == 200 and body == files[want][0], f"{path}: {st} {body!r}")
                check(h["content-type"] == "text/html; charset=utf-8", f"{path}: {h}")
            for path in ("/empty", "/empty/", "/missing", "/dir/missing.html",
                         "/noext/", "/f1.css/x"):
                st, _, _ = curl(srv, path)
                check(st == 404, f"{path}: {st}")
            # A FIFO is no file to serve, and opening it must not hang.
            os.mkfifo(os.path.join(root, "fifo"))
            st, _, _ = curl(srv, "/fifo", "-m", "5")
            check(st == 404, f"fifo: {st}")
            if os.geteuid() != 0:
                os.chmod(root + "/noext", 0)
                st, _, _ = curl(srv, "/noext")
                check(st == 403, f"unreadable: {st}")
            # Many files over one kept-alive connection, big ones between.
            c = Conn(srv)
            order = list(files.items()) * 2
            for path, (data, _) in order:
                c.send(req(path.replace(" ", "%20")))
                st, h, body = c.response()
                check(st == 200 and body == data, f"keep-alive {path}: {st}")
            # And pipelined: every request at once, answers in order.
            c.send(b"".join(req(p.replace(" ", "%20")) for p, _ in order))
            for path, (data, _) in order:
                st, h, body = c.response()
                check(st == 200 and body == data, f"pipelined {path}: {st} {len(body)}")
            c.close()


def traversal(env):
    need("curl")
    with tempfile.TemporaryDirectory() as d:
        root, _ = make_root(d)
        outside = os.path.join(d, "outside")
        os.makedirs(outside)
        with open(os.path.join(outside, "secret.txt"), "wb") as f:
            f.write(SECRET)
        os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "abs"))
        os.symlink(outside, os.path.join(root, "absdir"))
        os.symlink("../outside/secret.txt", os.path.join(root, "rel"))
        os.symlink("../outside", os.path.join(root, "reldir"))
        os.symlink("../../outside/secret.txt", os.path.join(root, "dir", "deeprel"))
        os.symlink("/proc/self/root" + outside + "/secret.txt", os.path.join(root, "magic"))
        os.symlink("index.html", os.path.join(root, "inside"))
        attempts = [
            "/../outside/secret.txt", "/dir/../../outside/secret.txt", "/..",
            "/%2e%2e/outside/secret.txt", "/%2E%2E/outside/secret.txt",
            "/.%2e/outside/secret.txt", "/%2e./outside/secret.txt",
            "/..%2foutside%2fsecret.txt", "/%2e%2e%2foutside%2fsecret.txt",
            "/dir%2f..%2f..%2foutside/secret.txt", "/dir/%2e%2e/%2e%2e/outside/secret.txt",
            "/%252e%252e/outside/secret.txt", "/..%5coutside%5csecret.txt",
            "/index.html%00", "/%00", "/abs%00.html", "/secret.txt%00/../x",
            "/abs", "/absdir/secret.txt", "/rel", "/reldir/secret.txt", "/dir/deeprel",
            "/magic", "//outside/secret.txt", "/" + d + "/outside/secret.txt",
            "/proc/self/root/etc/passwd", "/../../../../../../etc/passwd",
        ]
        with Server("--root", root, env=env) as srv:
            for path in attempts:
                st, _, body = curl(srv, path)
                check(st in (400, 404), f"{path}: {st}")
                check(SECRET not in body and b"root:" not in body, f"{path} leaked: {body!r}")
            # absolute-form and raw bytes curl would not send.
            c = Conn(srv)
            for raw in (b"GET http://t/../outside/secret.txt HTTP/1.1\r\nHost: t\r\n\r\n",
                        b"GET /\x2e\x2e/outside/secret.txt HTTP/1.1\r\nHost: t\r\n\r\n"):
                c.send(raw)
                st, _, body = c.response()
                check(st == 400 and SECRET not in body, f"{raw!r}: {st}")
                c = Conn(srv)  # a 400 closes the connection
            c.close()
            # A symbolic link that stays beneath the root is followed by
            # openat2; the component walk follows none.
            st, _, body = curl(srv, "/inside")
            want = 404 if env.get("UCO_HTTP_OPEN") == "walk" else 200
            check(st == want, f"/inside: {st}, want {want}")


def test_traversal():
    traversal({})


def test_traversal_walk():
    """The same attempts through the fallback for kernels without openat2."""
    traversal({"UCO_HTTP_OPEN": "walk"})


def test_traversal_executor():
    """The same attempts through openat2 on the executor (the path of a
    lookup that would block the loop)."""
    traversal({"UCO_HTTP_OPEN": "executor"})


def test_errors():
    need("curl")
    with Server() as srv:
        st, h, _ = curl(srv, "/plaintext", "-H", "X-Big: " + "a" * 9000)
        check(st == 431 and h["connection"] == "close", f"big field: {st} {h}")
        st, _, _ = curl(srv, "/" + "a" * 9000)
        check(st == 414, f"long target: {st}")
        many = []
        for i in range(70):
            many += ["-H", f"X-{i}: {i}"]
        st, _, _ = curl(srv, "/plaintext", *many)
        check(st == 431, f"70 fields: {st}")
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"z" * (2 << 20))
            f.flush()
            st, h, _ = curl(srv, "/plaintext", "--data-binary", "@" + f.name)
            check(st == 413 and h["connection"] == "close", f"2 MiB body: {st} {h}")
        # Raw heads: the status, then the connection closes.
        cases = [
            (b"GARBAGE\r\n\r\n", 400), (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505), (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: t\r\nA: b\r\n c\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: t\r\nA : b\r\n\r\n", 400),
            (b"GET /a\x00 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
            (b"GET / HTTP/1.1\rHost: t\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 3\r\n\r\n", 400),
            (b"GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 70 + b"\r\n", 431),
            (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"y" * 9000, 431),
            (b"G" * 9000, 414),
        ]
        for raw, want in cases:
            c = Conn(srv)
            c.send(raw + req("/plaintext"))  # never answered: the stream is broken
            st, h, body = c.response()
            check(st == want, f"{raw[:60]!r}: {st}, want {want}")
            check(h["connection"] == "close", f"{raw[:40]!r}: {h}")
            check(c.closed_within(3) and c.buf == b"", f"{raw[:40]!r}: not closed, {c.buf[:80]!r}")
            c.close()


def test_pipelining():
    with Server() as srv:
        c = Conn(srv)
        # One write, three answers in order, HEAD without a body.
        c.send(req("/plaintext") + req("/bytes/5", "HEAD") + req("/bytes/3"))
        st, _, body = c.response()
        check(st == 200 and body == b"Hello, World!", "first")
        st, h, body = c.response(head=True)
        check(st == 200 and h["content-length"] == "5", "second (HEAD)")
        st, _, body = c.response()
        check(st == 200 and body == b"xxx", "third")
        # 300 at once, each with its own length, so that order shows.
        c.send(b"".join(req(f"/bytes/{i}") for i in range(300)))
        for i in range(300):
            st, h, body = c.response()
            check(st == 200 and len(body) == i, f"pipelined {i}: {st} {len(body)}")
        # Big answers between small ones, pipelined.
        c.send(req("/bytes/3000000") + req("/plaintext") + req("/bytes/70000") + req("/bytes/1"))
        for n in (3000000, 13, 70000, 1):
            st, _, body = c.response()
            check(st == 200 and len(body) == n, f"mixed {n}: {len(body)}")
        # A pair of requests split at every byte boundary.
        pair = req("/bytes/7") + req("/plaintext", extra="X-Pad: " + "p" * 50 + "\r\n")
        for k in range(1, len(pair)):
            c.send(pair[:k])
            time.sleep(0.002)
            c.send(pair[k:])
            st, _, body = c.response()
            check(st == 200 and body == b"x" * 7, f"split at {k}: {st} {body!r}")
            st, _, body = c.response()
            check(st == 200 and body == b"Hello, World!", f"split at {k}, second: {st}")
        # One byte at a time.
        for b in req("/bytes/11"):
            c.send(bytes([b]))
            time.sleep(0.001)
        st, _, body = c.response()
        check(st == 200 and body == b"x" * 11, f"byte by byte: {st}")
        # Leading empty lines are skipped (RFC 9112 2.2).
        c.send(b"\r\n" + req("/plaintext"))
        check(c.response()[0] == 200, "leading CR LF")
        # A request after one that closes is not answered.
        c.send(req("/bytes/2", extra="Connection: close\r\n") + req("/plaintext"))
        st, h, body = c.response()
        check(st == 200 and h["connection"] == "close" and body == b"xx", f"close: {h}")
        check(c.closed_within(3) and c.buf == b"", f"answered after close: {c.buf!r}")


def test_bodies():
    with Server() as srv:
        c = Conn(srv)
        # Content-Length bodies are read and dropped; the next request
        # is answered (a body that looks like a request must not be).
        body = req("/bytes/9")
        c.send(req("/x", "POST", f"Content-Length: {len(body)}\r\n") + body + req("/bytes/2"))
        st, h, _ = c.response()
        check(st == 405 and h["allow"] == "GET, HEAD", f"POST: {st}")
        st, _, b = c.response()
        check(st == 200 and b == b"xx", f"after a body: {st} {b!r}")
        # A GET may carry a body too.
        c.send(req("/bytes/1", extra="Content-Length: 4\r\n") + b"abcd" + req("/bytes/3"))
        check(c.response()[2] == b"x", "GET with a body")
        check(c.response()[2] == b"xxx", "after the GET body")
        # A body arriving in pieces, split inside the next head as well.
        c.send(req("/p", "PUT", "Content-Length: 100000\r\n"))
        check(c.response()[0] == 405, "PUT")
        for _ in range(10):
            c.send(b"b" * 10000)
            time.sleep(0.002)
        c.send(b"GET /bytes/4 HT")
        time.sleep(0.01)
        c.send(b"TP/1.1\r\nHost: t\r\n\r\n")
        check(c.response()[2] == b"xxxx", "after a body in pieces")
        # Chunked bodies, with extensions and trailers, split anywhere.
        chunked = (b"5;ext=1\r\nhello\r\n10\r\n" + b"c" * 16 + b"\r\n0\r\nTrailer: t\r\n\r\n")
        msg = req("/c", "POST", "Transfer-Encoding: chunked\r\n") + chunked + req("/bytes/6")
        for k in range(1, len(msg), 7):
            c.send(msg[:k])
            time.sleep(0.002)
            c.send(msg[k:])
            check(c.response()[0] == 405, f"chunked split at {k}")
            check(c.response()[2] == b"x" * 6, f"after chunked split at {k}")
        # curl's own chunked upload.
        need("curl")
        st, _, _ = curl(srv, "/plaintext", "-H", "Transfer-Encoding: chunked", "-d", "abc")
        check(st == 405, f"curl chunked: {st}")
        st, _, _ = curl(srv, "/plaintext", "-d", "a=b")
        check(st == 405, f"curl form: {st}")
        # Expect: 100-continue is answered at once, and the connection ends.
        c = Conn(srv)
        c.send(req("/x", "POST", "Content-Length: 10\r\nExpect: 100-continue\r\n"))
        st, h, _ = c.response()
        check(st == 405 and h["connection"] == "close", f"expect: {st} {h}")
        check(c.closed_within(3), "expect: still open")
        # A malformed chunked body is 400, and closes.
        c = Conn(srv)
        c.send(req("/x", "POST", "Transfer-Encoding: chunked\r\n") + b"zz\r\n")
        check(c.response()[0] == 405, "bad chunked: first the answer to the head")
        st, h, _ = c.response()
        check(st == 400 and h["connection"] == "close", f"bad chunked: {st}")
        check(c.closed_within(3), "bad chunked: still open")
        # Too big a chunked body is 413.
        c = Conn(srv)
        c.send(req("/x", "POST", "Transfer-Encoding: chunked\r\n") + b"200000\r\n")
        c.response()
        check(c.response()[0] == 413, "big chunked")
        check(c.closed_within(3), "big chunked: still open")


def test_keepalive():
    need("curl")
    with Server() as srv:
        # curl reuses the connection for its second transfer.
        p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-o", "/dev/null", "-w",
                            "%{http_code} %{num_connects}\n", srv.url("/plaintext"),
                            srv.url("/bytes/10")], capture_output=True, text=True, timeout=10)
        check(p.stdout.split() == ["200", "1", "200", "0"], f"curl reuse: {p.stdout!r}")
        c = Conn(srv)
        for i in range(50):
            c.send(req(f"/bytes/{i}"))
            check(len(c.response()[2]) == i, f"sequential {i}")
        check(not c.closed_within(0.2), "keep-alive connection closed")
        c.send(req("/plaintext", extra="Connection: close\r\n"))
        st, h, _ = c.response()
        check(h["connection"] == "close" and c.closed_within(3), f"Connection: close: {h}")
        # HTTP/1.0: closed unless it asks for keep-alive.
        c = Conn(srv)
        c.send(req("/plaintext", version="1.0"))
        st, h, _ = c.response()
        check(st == 200 and h["connection"] == "close" and c.closed_within(3), f"1.0: {h}")
        c = Conn(srv)
        c.send(req("/plaintext", version="1.0", extra="Connection: keep-alive\r\n") * 2)
        for _ in range(2):
            st, h, _ = c.response()
            check(st == 200 and h["connection"] == "keep-alive", f"1.0 keep-alive: {h}")
        check(not c.closed_within(0.2), "1.0 keep-alive closed")


def test_timeouts():
    with Server("--idle-timeout", "1", "--header-timeout", "1.5") as srv:
        # Idle: nothing sent; then idle after an answer.
        c = Conn(srv)
        t = time.monotonic()
        check(c.closed_within(4), "idle connection not closed")
        el = time.monotonic() - t
        check(0.8 < el < 2.5 and c.buf == b"", f"idle closed after {el:.2f} s, {c.buf!r}")
        c = Conn(srv)
        c.send(req("/plaintext"))
        c.response()
        t = time.monotonic()
        check(c.closed_within(4), "idle after a request not closed")
        el = time.monotonic() - t
        check(0.8 < el < 2.5, f"idle after a request: {el:.2f} s")
        # Slowloris: a byte of a head every 0.4 s, more often than the
        # idle timeout, is cut off by the header timeout with a 408.
        c = Conn(srv)
        t = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
        closed = False
        for _ in range(20):
            time.sleep(0.4)
            try:
                c.send(b"X")
            except OSError:
                closed = True
                break
            if c.closed_within(0.01):
                closed = True
                break
        closed = closed or c.closed_within(3)
        el = time.monotonic() - t
        check(closed and el < 3.0, f"slowloris held the connection {el:.2f} s")
        check(c.buf.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), f"no 408: {c.buf[:60]!r}")
        # A slow but honest head, within the header timeout, is served.
        c = Conn(srv)
        for b in req("/plaintext"):
            c.send(bytes([b]))
            time.sleep(0.02)
        check(c.response()[2] == b"Hello, World!", "slow head")
        # A body trickling slower than the idle timeout is cut off.
        c = Conn(srv)
        c.send(req("/x", "POST", "Content-Length: 100\r\n") + b"a")
        check(c.response()[0] == 405, "slow body: answer")
        t = time.monotonic()
        check(c.closed_within(4), "slow body not cut")
        check(time.monotonic() - t < 2.5, "slow body: too late")


def test_slow_reader():
    with Server("--idle-timeout", "1") as srv:
        # A client that asks for 64 MiB and reads nothing is dropped once
        # the server could send nothing for the idle timeout.
        c = Conn(srv)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(req("/bytes/67108864"))
        time.sleep(3)
        t = time.monotonic()
        total = 0
        c.s.settimeout(5)
        try:
            while b := c.s.recv(1 << 20):
                total += len(b)
        except ConnectionResetError:
            pass
        check(total < 64 << 20, f"got {total} bytes: never dropped")
        check(time.monotonic() - t < 2, "the connection stayed open")
        # A client that pipelines far ahead without reading is dropped
        # too, and the others are served all along.
        c = Conn(srv)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(req("/bytes/67108864"))
        flood = req("/plaintext", extra="X-Pad: " + "p" * 900 + "\r\n") * 64
        sent, dropped = 0, False
        c.s.settimeout(0.5)
        t = time.monotonic()
        while time.monotonic() - t < 8:
            try:
                sent += c.s.send(flood)
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
                break
            other = Conn(srv)
            other.send(req("/plaintext"))
            check(other.response()[2] == b"Hello, World!", "another client starved")
            other.close()
        check(dropped, f"a client {sent} bytes ahead was not dropped")


def test_threads():
    need("curl")
    with Server("--threads", "4") as srv:
        out = []

        def worker():
            for _ in range(25):
                out.append(curl(srv, "/bytes/1000")[0])

        ts = [threading.Thread(target=worker) for _ in range(4)]
        for t in ts:
            t.start()
        conns = [Conn(srv) for _ in range(32)]
        for c in conns:
            c.send(req("/plaintext"))
        for c in conns:
            check(c.response()[2] == b"Hello, World!", "32 connections")
        for t in ts:
            t.join()
        check(out == [200] * 100, f"threads: {out}")


def test_signals():
    for sig in (signal.SIGINT, signal.SIGTERM):
        srv = Server("--threads", "2")
        # Connections in every state: idle, mid-head, blocked in a send.
        idle = Conn(srv)
        mid = Conn(srv)
        mid.send(b"GET / HTTP/1.1\r\n")
        stuck = Conn(srv)
        stuck.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.send(req("/bytes/67108864"))
        time.sleep(0.3)
        t = time.monotonic()
        rc = srv.stop(sig, within=5)
        check(rc == 0, f"signal {sig}: exit status {rc}: {srv.err!r}")
        check(time.monotonic() - t < 2, f"signal {sig}: exit took {time.monotonic() - t:.2f} s")
        for c in (idle, mid, stuck):
            c.close()


def test_usage():
    p = subprocess.run([HTTP, "--help"], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0 and "--idle-timeout" in p.stdout and "--root" in p.stdout,
          f"--help: {p.returncode} {p.stdout!r}")
    bad = [(["--port", "abc"], 2, "--port"), (["--port", "70000"], 2, "--port"),
           (["--threads", "0"], 2, "--threads"), (["--idle-timeout", "0"], 2, "idle-timeout"),
           (["--header-timeout", "x"], 2, "header-timeout"), (["--bogus"], 2, "usage"),
           (["extra"], 2, "extra"), (["--root", "/nonexistent/dir"], 1, "/nonexistent/dir"),
           (["--backend", "kqueue"], 2, "--backend"), (["--backend"], 2, "usage"),
           (["--addr", "not-an-address!", "--port", "0"], 1, "--addr")]
    for args, rc, word in bad:
        p = subprocess.run([HTTP, *args], capture_output=True, text=True, timeout=10)
        check(p.returncode == rc and word in p.stderr,
              f"{args}: exit {p.returncode} (want {rc}), {p.stderr!r}")
    # A port taken by a socket without SO_REUSEPORT.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    p = subprocess.run([HTTP, "--addr", "127.0.0.1", "--port", str(port)], capture_output=True,
                       text=True, timeout=10)
    check(p.returncode == 1 and "Address already in use" in p.stderr, f"busy: {p.stderr!r}")
    s.close()


def test_backend():
    """--backend: the start-up line says which backend the loops run on, the
    option overrides UCO_BACKEND in the environment, and the server serves."""
    for arg, env in (("io_uring", {"UCO_BACKEND": "epoll"}), ("auto", {}), ("epoll", {})):
        if arg == "io_uring" and os.environ.get("UCO_TEST_NO_IO_URING"):
            continue  # refused here (tests/tools/no-io-uring)
        with Server("--backend", arg, env=env) as srv:
            m = re.search(rb", backend (\w+)$", srv.line.strip())
            check(m is not None, f"--backend {arg}: no backend in {srv.line!r}")
            got = m.group(1).decode()
            if arg == "auto":
                # io_uring, or epoll where this machine refuses io_uring.
                check(got in ("io_uring", "epoll"), f"--backend auto: {got}")
            else:
                check(got == arg, f"--backend {arg} runs on {got}")
            st, _, body = curl(srv, "/plaintext")
            check(st == 200 and body == b"Hello, World!", f"--backend {arg}: {st} {body!r}")
            print(f"--backend {arg}: runs on {got}, serves /plaintext")


def wrk(srv, path, conns=16):
    p = subprocess.run(["wrk", "-t1", f"-c{conns}", "-d1s", srv.url(path)], capture_output=True,
                       text=True, timeout=20)
    check(p.returncode == 0, f"wrk: {p.returncode} {p.stderr}")
    m = re.search(r"(\d+) requests in", p.stdout)
    check(m and int(m.group(1)) > 0, f"wrk {path}: no requests: {p.stdout}")
    check("Socket errors" not in p.stdout and "Non-2xx" not in p.stdout,
          f"wrk {path}: errors: {p.stdout}")
    return int(m.group(1))


def test_wrk():
    need("wrk")
    with tempfile.TemporaryDirectory() as d:
        root, _ = make_root(d)
        with Server("--root", root) as srv:
            wrk(srv, "/plaintext")
            wrk(srv, "/bytes/100000")
            wrk(srv, "/index.html")
            wrk(srv, "/f6.jpg", conns=4)  # 70000 bytes: the splice path
        with Server("--threads", "2") as srv:
            wrk(srv, "/plaintext")


if __name__ == "__main__":
    run_named(globals(), "test_http.py", "UCO_HTTP")
