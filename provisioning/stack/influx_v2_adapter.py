"""A minimal InfluxDB v2 write endpoint in front of InfluxDB 1.6 (test and demo stack only).

Debian ships InfluxDB 1.6, which lacks ``/api/v2/write`` (added in 1.8). influxdb-client
writes only there, so this adapter maps ``POST /api/v2/write?bucket=db/rp&precision=p`` to
``POST /write?db=db&rp=rp&precision=p1``: the same mapping 1.8's compatibility API does.
The body and ``Content-Encoding`` (gzip) are passed through untouched. ``/ping`` and
``/health`` answer for the adapter *and* the database behind it, so a client sees the
database as down when it is.

The gateway never imports this: it speaks only the standard v2 write API.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

# v2 precision names -> v1 precision names.
_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}


class _Handler(BaseHTTPRequestHandler):
    server: "_AdapterServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the stack's output stays quiet
        pass

    def _reply(self, status: int, message: str = "") -> None:
        body = b""
        if status >= 300:
            body = json.dumps({"code": "adapter", "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _upstream(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def do_GET(self):  # noqa: N802 (http.server API)
        path = urlparse(self.path).path
        if path not in ("/ping", "/health"):
            return self._reply(404, f"not found: {path}")
        try:
            status, _ = self._upstream("GET", "/ping", None, {})
        except OSError as exc:
            return self._reply(503, f"influxdb unreachable: {exc}")
        if path == "/health":
            ok = status == 204
            body = json.dumps({"status": "pass" if ok else "fail", "name": "influxdb-v2-adapter"}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        return self._reply(204 if status == 204 else 503, "influxdb not ready")

    def do_POST(self):  # noqa: N802
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if url.path != "/api/v2/write":
            return self._reply(404, f"not found: {url.path}")
        query = parse_qs(url.query)
        bucket = (query.get("bucket") or [""])[0]
        if not bucket:
            return self._reply(400, "bucket is required")
        db, _, rp = bucket.partition("/")
        params = {"db": db, "precision": _PRECISION.get((query.get("precision") or ["ns"])[0], "n")}
        if rp:
            params["rp"] = rp
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.headers.get("Content-Encoding"):
            headers["Content-Encoding"] = self.headers["Content-Encoding"]
        try:
            status, text = self._upstream("POST", "/write?" + urlencode(params), body, headers)
        except OSError as exc:
            self.server.failures += 1
            return self._reply(503, f"influxdb unreachable: {exc}")
        if status == 204:
            self.server.writes += 1
            return self._reply(204)
        return self._reply(status, text.decode("utf-8", "replace")[:500])


class _AdapterServer(ThreadingHTTPServer):
    daemon_threads = True
    upstream_host: str
    upstream_port: int
    writes = 0
    failures = 0


class V2WriteAdapter:
    """Serve the adapter on ``127.0.0.1:port`` (0 = any free port) in a background thread.

    ``upstream`` is the InfluxDB 1.x HTTP address as ``host:port``. Use as a context manager
    or call ``start()``/``stop()``; ``url`` is the base URL for influxdb-client.
    """

    def __init__(self, upstream: str, port: int = 0):
        host, _, uport = upstream.rpartition(":")
        self._server = _AdapterServer(("127.0.0.1", port), _Handler)
        self._server.upstream_host = host or "127.0.0.1"
        self._server.upstream_port = int(uport)
        self._thread = threading.Thread(target=self._server.serve_forever, name="influx-v2-adapter", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def writes(self) -> int:
        return self._server.writes

    def start(self) -> "V2WriteAdapter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "V2WriteAdapter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
