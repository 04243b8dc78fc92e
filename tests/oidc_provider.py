"""A small OpenID Connect provider for the single sign-on tests: discovery, an authorization endpoint that signs
in whoever ``Idp.user`` is at once (no login form), a token endpoint that checks the client's secret, the code
(once), the redirect URI and the PKCE verifier, and its published keys. ``Idp.fault`` makes it send an ID token
that must be refused (another audience, expired, another nonce, a key it never published, an unverified email).
Run it with ``notifier.web.running(idp.app())``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "notifier-dashboard"
CLIENT_SECRET = "a-client-secret-of-the-test-provider"


@dataclass
class Idp:
    """The provider's state: its key, who signs in next, the codes it gave, and the fault to inject."""

    user: dict[str, Any] = field(default_factory=lambda: {"sub": "u-1", "email": "ana@corp.example",
                                                          "email_verified": True, "name": "Ana Corp",
                                                          "groups": ["marketing"]})
    fault: str | None = None  # audience | expired | nonce | key | unverified | unsaid (no email_verified)
    slash: bool = False  # its issuer ends with "/", as some providers' do
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"}))
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_calls: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/.well-known/openid-configuration", self.discovery),
                                 Route("/authorize", self.authorize), Route("/token", self.token, methods=["POST"]),
                                 Route("/jwks", self.jwks)])

    def issuer(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + ("/" if self.slash else "")

    async def discovery(self, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"issuer": self.issuer(request), "authorization_endpoint": f"{base}/authorize",
                             "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks",
                             "response_types_supported": ["code"], "id_token_signing_alg_values_supported": ["RS256"],
                             "code_challenge_methods_supported": ["S256"]})

    async def jwks(self, _request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code" or "openid" not in q.get("scope", ""):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE S256 required"}, 400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"redirect_uri": q["redirect_uri"], "nonce": q.get("nonce"),
                            "challenge": q["code_challenge"], "user": dict(self.user)}
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}",
                                status_code=302)

    async def token(self, request: Request) -> Response:
        self.token_calls += 1
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        client = base64.b64decode(encoded).decode() if scheme == "Basic" else ""
        if client != f"{CLIENT_ID}:{CLIENT_SECRET}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        given = self.codes.pop(str(form.get("code")), None)  # a code works once
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if given is None or form.get("redirect_uri") != given["redirect_uri"] or challenge != given["challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {**given["user"], "iss": self.issuer(request), "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                  "nonce": given["nonce"]}
        key = self.key
        if self.fault == "audience":
            claims["aud"] = "someone-else"
        elif self.fault == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 1800
        elif self.fault == "nonce":
            claims["nonce"] = "not-the-one-sent"
        elif self.fault == "key":
            key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})  # same kid, never published
        elif self.fault == "unverified":
            claims["email_verified"] = False
        elif self.fault == "unsaid":
            claims.pop("email_verified", None)
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token})
