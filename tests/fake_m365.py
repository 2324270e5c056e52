"""A fake Microsoft Entra ID token endpoint on loopback, over HTTPS, for MSAL to reach.

MSAL insists on an https authority, so the server uses a self-signed certificate made by the test
(``tests.loopback.make_certificate``), which MSAL is told to trust (``EVALBOT_M365_CA_FILE``). It serves what the
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

import threading
from pathlib import Path
from urllib.parse import parse_qs

from tests.loopback import JsonHandler, LoopbackServer

TENANT = "5f1c2c5e-7c0a-4d1e-9a53-1b2c3d4e5f60"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SECRET = "evalbot-test-client-secret"
SCOPE = "https://outlook.office365.com/.default"


class FakeEntra:
    def __init__(self, certificate: tuple[Path, Path], *, expires_in: int = 3599) -> None:
        self.expires_in = expires_in
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.requests: list[dict[str, list[str]]] = []  # each token request's form
        self.discoveries = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                if self.path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                    with fake._lock:
                        fake.discoveries += 1
                    base = f"{fake.url}/{TENANT}"
                    self.send_json(
                        200,
                        {
                            "token_endpoint": f"{base}/oauth2/v2.0/token",
                            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                            "issuer": f"{base}/v2.0",
                            "token_endpoint_auth_methods_supported": ["client_secret_post"],
                        },
                    )
                else:
                    self.send_json(
                        404, {"error": "invalid_tenant", "error_description": "AADSTS90002"}
                    )

            def do_POST(self) -> None:
                form = parse_qs(self.read_body().decode())
                if self.path != f"/{TENANT}/oauth2/v2.0/token":
                    self.send_json(404, {"error": "not_found"})
                    return
                with fake._lock:
                    fake.requests.append(form)
                if form.get("grant_type") != ["client_credentials"] or form.get("scope") != [SCOPE]:
                    self.send_json(
                        400, {"error": "invalid_request", "error_description": "AADSTS900144"}
                    )
                    return
                if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [SECRET]:
                    self.send_json(
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
                self.send_json(
                    200,
                    {"token_type": "Bearer", "expires_in": fake.expires_in, "access_token": token},
                )

        self._server = LoopbackServer(Handler, certificate)
        self.port, self.url = self._server.port, self._server.url

    def __enter__(self) -> FakeEntra:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def revoke(self, token: str) -> None:
        with self._lock:
            self.valid.discard(token)
