"""Google's OAuth2 token endpoint for service accounts, and service-account files that point at it.

The fault ``{"fcm": {"reject_token_exchange": true}}`` makes every exchange answer 400 ``invalid_grant``
("Invalid JWT Signature.", as for a deleted or rotated key), so google-auth raises its RefreshError.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifier.emulator.state import EmulatorState
from notifier.emulator.wire import STATE, json_answer
from notifier.errors import UserError

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600
CLOCK_SKEW = 300


def write_credentials(path: Path, token_uri: str, project_id: str = "notifier-demo") -> dict[str, Any]:
    """Write a service-account JSON with a fresh RSA key whose token_uri is the emulator; returns its content."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    email = f"notifier@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**21 - 10**20) + 10**20),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{quote(email)}",
        "universe_domain": "googleapis.com",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a private key
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    return info


def trust_credentials(state: EmulatorState, info: dict[str, Any]) -> None:
    """Verify token requests against this service account's key from now on (and refuse other keys)."""
    try:
        key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        state.public_keys[info["private_key_id"]] = key.public_key()
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise UserError(f"not a service-account file with an RSA private key: {exc}") from None


def load_credentials(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read service-account credentials: {exc}") from None


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _grant_error(description: str, error: str = "invalid_grant") -> web.Response:
    return json_answer({"error": error, "error_description": description}, 400)


def check_assertion(state: EmulatorState, assertion: str) -> str | None:
    """Why a JWT bearer assertion is refused, or None when it is good."""
    try:
        head, claims, signature = assertion.split(".")
        header, payload = json.loads(_b64(head)), json.loads(_b64(claims))
        signed = _b64(signature)
    except (ValueError, binascii.Error):
        return "Invalid JWT: the assertion is not a JSON Web Token."
    if not isinstance(header, dict) or not isinstance(payload, dict) or header.get("alg") != "RS256":
        return "Invalid JWT: expected an RS256 JSON Web Token."
    if state.public_keys:
        key = state.public_keys.get(header.get("kid"))
        candidates = [key] if key is not None else list(state.public_keys.values())
        if not any(_verifies(k, signed, f"{head}.{claims}".encode()) for k in candidates):
            return "Invalid JWT Signature."
    exp = payload.get("exp")
    if not isinstance(exp, int | float) or exp < time.time() - CLOCK_SKEW:
        return ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.")
    return None


def _verifies(key: Any, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


async def token(request: web.Request) -> web.Response:
    """``POST /token``: exchange a service account's signed JWT for an access token the FCM endpoint accepts."""
    state = request.app[STATE]
    form = await request.post()
    grant_type, assertion = form.get("grant_type"), form.get("assertion")
    if grant_type != JWT_BEARER:
        state.count("token", 400)
        return _grant_error(f"Invalid grant_type: {grant_type}", "unsupported_grant_type")
    if not isinstance(assertion, str) or not assertion:
        state.count("token", 400)
        return _grant_error("Missing required parameter: assertion", "invalid_request")
    why = check_assertion(state, assertion)
    if why is None and state.faults.providers["fcm"].reject_token_exchange:
        state.injected_fault("fcm", "reject_token_exchange")
        why = "Invalid JWT Signature."
    if why is not None:
        state.count("token", 400)
        return _grant_error(why)
    access_token = f"emu-{secrets.token_urlsafe(24)}"
    state.access_tokens.add(access_token)
    state.count("token", 200)
    return json_answer({"access_token": access_token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"})
