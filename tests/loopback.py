"""What the fake services on loopback share: a small HTTP(S) server in a thread of the test, a
quiet request handler that answers JSON, a self-signed certificate for 127.0.0.1 (for the fakes
that must speak TLS: Entra ID for MSAL, an SMTP relay with STARTTLS or implicit TLS), and a free
port to start a server on."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def make_certificate(folder: Path, name: str = "loopback") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost): (certificate, key)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A server's TLS context presenting the certificate from ``make_certificate``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (the test's output stays the test's) and answers JSON."""

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LoopbackServer:
    """An HTTP server on a free port of 127.0.0.1, serving from a thread while the ``with``
    block lasts; over TLS when given a certificate."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], certificate: tuple[Path, Path] | None = None
    ) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if certificate is not None:
            self.server.socket = server_context(certificate).wrap_socket(
                self.server.socket, server_side=True
            )
        self.port = int(self.server.server_address[1])
        scheme = "http" if certificate is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
