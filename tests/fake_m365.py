"""A fake Microsoft Entra ID token endpoint on loopback, over HTTPS, for MSAL to reach.

MSAL insists on an https authority, so the server uses a self-signed certificate made by the test
(``make_certificate``), which MSAL is told to trust (``EVALBOT_M365_CA_FILE``). It serves what the
client-credentials grant needs:

- ``GET /<tenant>/v2.0/.well-known/openid-configuration``: the tenant's OpenID configuration
  (404 for another tenant, as Entra ID answers an unknown one);
- ``POST /<tenant>/oauth2/v2.0/token``: checks ``grant_type=client_credentials``, the client id,
  the secret and the scope, and issues ``token-1``, ``token-2``... each valid ``expires_in``
  seconds; a wrong secret gets Entra ID's ``invalid_client`` answer (AADSTS7000215).

``valid`` holds the tokens an SMTP server should accept (``SmtpServer(xoauth2=fake.valid)``);
``revoke`` takes one back, as a relay refusing an expired or withdrawn token does.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

TENANT = "5f1c2c5e-7c0a-4d1e-9a53-1b2c3d4e5f60"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SECRET = "evalbot-test-client-secret"
SCOPE = "https://outlook.office365.com/.default"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost): (certificate, key)."""
    cert, key = folder / "loopback.pem", folder / "loopback.key"
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


class FakeEntra:
    def __init__(self, certificate: tuple[Path, Path], *, expires_in: int = 3599) -> None:
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.requests: list[dict[str, list[str]]] = []  # each token request's form
        self.discoveries = 0
        self._lock = threading.Lock()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                if self.path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                    with fake._lock:
                        fake.discoveries += 1
                    base = f"{fake.url}/{TENANT}"
                    self._json(
                        200,
                        {
                            "token_endpoint": f"{base}/oauth2/v2.0/token",
                            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                            "issuer": f"{base}/v2.0",
                            "token_endpoint_auth_methods_supported": ["client_secret_post"],
                        },
                    )
                else:
                    self._json(404, {"error": "invalid_tenant", "error_description": "AADSTS90002"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                if self.path != f"/{TENANT}/oauth2/v2.0/token":
                    self._json(404, {"error": "not_found"})
                    return
                with fake._lock:
                    fake.requests.append(form)
                if form.get("grant_type") != ["client_credentials"] or form.get("scope") != [SCOPE]:
                    self._json(
                        400, {"error": "invalid_request", "error_description": "AADSTS900144"}
                    )
                    return
                if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [SECRET]:
                    self._json(
                        401,
                        {
                            "error": "invalid_client",
                            "error_description": (
                                "AADSTS7000215: Invalid client secret provided. Ensure the "
                                "secret being sent in the request is the client secret value."
                            ),
                        },
                    )
                    return
                with fake._lock:
                    token = f"token-{len(fake.issued) + 1}"
                    fake.issued.append(token)
                    fake.valid.add(token)
                self._json(
                    200,
                    {"token_type": "Bearer", "expires_in": fake.expires_in, "access_token": token},
                )

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEntra:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def revoke(self, token: str) -> None:
        with self._lock:
            self.valid.discard(token)
