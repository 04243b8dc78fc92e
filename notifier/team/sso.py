"""Single sign-on by OpenID Connect (the authorization code flow with PKCE): the company's identity provider proves
who someone is, and a claim of its ID token (``NOTIFIER_OIDC_ROLE_CLAIM``, ``groups`` unless set) gives their role
through ``NOTIFIER_OIDC_ROLES`` (``marketing-leads=approver,marketing=editor``; ``*=viewer`` admits anyone the
provider vouches for). The highest role any of their values maps to wins; none: refused.

Authlib builds the authorization request and the PKCE challenge; joserfc (Authlib's JOSE library) checks the ID
token: its signature against the provider's published keys, issuer, audience, expiry and the nonce of this login.
The provider's discovery document and keys are read over HTTPS (plain HTTP only for a provider on this machine),
kept for an hour, and read again at once when a token names a key not seen yet (a rotation).

A person who logs in this way for the first time is added with the role the claim gives; a later login brings
their role up to date. A disabled person stays out. Nothing of the person goes into a log.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notifier.config import Settings, check_issuer
from notifier.errors import RequestRefused
from notifier.ledger import audit
from notifier.ledger.models import Person
from notifier.team.people import ACTIVE, DISABLED, Member, checked_email, checked_name, member
from notifier.team.roles import ROLES, Role

TIMEOUT = 10.0
CACHE_SECONDS = 3600
SCOPE = "openid email profile"
ALGORITHMS = ["RS256", "ES256", "PS256"]  # never "none", never a shared secret


@dataclass(frozen=True)
class Provider:
    """What discovery says of the provider."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


_cache: dict[str, tuple[float, Any]] = {}
_lock = threading.Lock()


def _get_json(url: str) -> Any:
    check_issuer(url)  # the same rule for every URL we read
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:  # https, or a provider on this machine
            return json.loads(answer.read(1024 * 1024))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RequestRefused(502, f"the identity provider did not answer at {url}: {exc}") from None


def _cached(url: str, fresh: bool = False) -> Any:
    with _lock:
        hit = _cache.get(url)
    if hit and not fresh and hit[0] > time.monotonic():
        return hit[1]
    doc = _get_json(url)
    with _lock:
        _cache[url] = (time.monotonic() + CACHE_SECONDS, doc)
    return doc


def provider(settings: Settings) -> Provider:
    issuer = check_issuer(settings.oidc_issuer or "")
    doc = _cached(f"{issuer}/.well-known/openid-configuration")
    try:  # the issuer exactly as the provider writes it (some end it with "/"): ID tokens carry it so
        found = Provider(str(doc["issuer"]), str(doc["authorization_endpoint"]),
                         str(doc["token_endpoint"]), str(doc["jwks_uri"]))
    except (KeyError, TypeError):
        raise RequestRefused(502, "the identity provider's discovery document lacks an endpoint") from None
    if found.issuer.rstrip("/") != issuer:
        raise RequestRefused(502, f"the identity provider says it is {found.issuer}, not {issuer}")
    return found


@dataclass(frozen=True)
class Flow:
    """One login under way: kept in a signed cookie between the two redirects."""

    state: str
    nonce: str
    verifier: str
    next: str

    def as_dict(self) -> dict[str, str]:
        return {"s": self.state, "n": self.nonce, "k": self.verifier, "x": self.next}

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Flow:
        return cls(str(doc["s"]), str(doc["n"]), str(doc["k"]), str(doc["x"]))


def start(settings: Settings, redirect_uri: str, next_path: str) -> tuple[str, Flow]:
    """The provider's authorization URL to send the browser to, and the flow to keep until it comes back."""
    found = provider(settings)
    flow = Flow(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_path)
    url = prepare_grant_uri(found.authorization_endpoint, settings.oidc_client_id, "code", redirect_uri=redirect_uri,
                            scope=SCOPE, state=flow.state, nonce=flow.nonce,
                            code_challenge=create_s256_code_challenge(flow.verifier), code_challenge_method="S256")
    return url, flow


@dataclass(frozen=True)
class Claims:
    """Who the provider vouches for, and the role its claim gives them here."""

    subject: str  # "<issuer> <sub>": the provider's own name for the account, which never changes
    email: str
    name: str
    role: Role


def finish(settings: Settings, flow: Flow, state: str, code: str, redirect_uri: str, now: float | None = None
           ) -> Claims:
    """Exchange the code for tokens, check the ID token, map its claims: a 403 for anything that does not hold."""
    if not secrets.compare_digest(state.encode(), flow.state.encode()):
        raise RequestRefused(403, "this sign-in did not start here (its state does not match): start again")
    found = provider(settings)
    tokens = _exchange(settings, found, code, redirect_uri, flow.verifier)
    id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
    if not isinstance(id_token, str):
        raise RequestRefused(502, "the identity provider sent no ID token")
    claims = _verified(settings, found, id_token, flow.nonce, now)
    return _mapped(settings, claims, f"{found.issuer} {claims['sub']}"[:600])


def _exchange(settings: Settings, found: Provider, code: str, redirect_uri: str, verifier: str) -> Any:
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                   "code_verifier": verifier}).encode()
    basic = base64.b64encode(f"{urllib.parse.quote(settings.oidc_client_id or '', safe='')}:"
                             f"{urllib.parse.quote(settings.oidc_client_secret or '', safe='')}".encode()).decode()
    check_issuer(found.token_endpoint)
    request = urllib.request.Request(found.token_endpoint, data=body, method="POST", headers={
        "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return json.loads(answer.read(1024 * 1024))
    except urllib.error.HTTPError as exc:
        raise RequestRefused(403, f"the identity provider refused the sign-in code ({exc.code}): start again") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RequestRefused(502, f"the identity provider's token endpoint did not answer: {exc}") from None


def _keys(found: Provider, fresh: bool) -> KeySet:
    try:
        return KeySet.import_key_set(_cached(found.jwks_uri, fresh))
    except (ValueError, TypeError, KeyError, JoseError):
        raise RequestRefused(502, "the identity provider's keys cannot be read") from None


def _verified(settings: Settings, found: Provider, id_token: str, nonce: str, now: float | None) -> dict[str, Any]:
    """The ID token's claims, once its signature, issuer, audience, times and nonce hold."""
    try:
        try:
            token = jwt.decode(id_token, _keys(found, False), algorithms=ALGORITHMS)
        except (JoseError, ValueError):  # perhaps signed with a key published since: read the keys again, once
            token = jwt.decode(id_token, _keys(found, True), algorithms=ALGORITHMS)
        jwt.JWTClaimsRegistry(now=int(now) if now is not None else None, leeway=60,
                              iss={"essential": True, "value": found.issuer},
                              aud={"essential": True, "value": settings.oidc_client_id},
                              exp={"essential": True}, sub={"essential": True},
                              nonce={"essential": True, "value": nonce}).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise RequestRefused(403, f"the identity provider's ID token does not hold: {type(exc).__name__}") from None
    return dict(token.claims)


def _mapped(settings: Settings, claims: dict[str, Any], subject: str) -> Claims:
    if claims.get("email_verified") is not True:  # missing, false or "false": the address may be anyone's
        raise RequestRefused(403, "the identity provider has not verified this account's email address")
    try:
        email = checked_email(str(claims.get("email") or ""))
    except Exception:
        raise RequestRefused(403, "the identity provider sent no email address for this account") from None
    raw = claims.get(settings.oidc_role_claim)
    values = {str(v) for v in (raw if isinstance(raw, list) else [raw] if raw is not None else [])}
    granted = [Role(role) for value, role in settings.oidc_roles if value in values or value == "*"]
    if not granted:
        raise RequestRefused(403, f"your account has no role in notifier (its {settings.oidc_role_claim!r} claim "
                                  "maps to none): ask an admin")
    role = max(granted, key=ROLES.index)
    name = str(claims.get("name") or email.split("@")[0])
    try:
        name = checked_name(name)
    except Exception:
        name = email.split("@")[0]
    return Claims(subject, email, name, role)


def sign_in(session: Session, claims: Claims, now: datetime) -> Member:
    """The person the provider vouched for, found by the provider's name for them (issuer and subject). On their
    first sign-in they are added, or an invited person with that address (who has no password) becomes them; a
    person who logs in with a password is never taken over (an admin gives them a new link first, which clears
    it). A later sign-in brings their role up to date; a disabled person is refused (403)."""
    person = session.scalars(select(Person).where(Person.sso_subject == claims.subject).with_for_update()).first()
    if person is None:
        person = session.scalars(select(Person).where(Person.email == claims.email).with_for_update()).first()
        if person is not None and (person.password_hash or person.sso_subject):
            raise RequestRefused(403, "this address already logs in here with a password: an admin can give it a "
                                      "new link (People, New link), after which single sign-on takes it over")
    if person is None:
        person = Person(email=claims.email, name=claims.name, role=claims.role.value, state=ACTIVE,
                        password_hash=None, sso_subject=claims.subject, epoch=0, created_at=now)
        session.add(person)
        try:
            session.flush()
        except IntegrityError:  # the same person's first sign-in twice at once, or the address just taken
            raise RequestRefused(409, "this account was added at the same moment: sign in again") from None
        audit.record(session, "person_add", at=now, detail={"person": person.id, "email": person.email,
                                                             "role": person.role, "via": "sso"})
    elif person.state == DISABLED:
        raise RequestRefused(403, "this account is disabled in notifier: ask an admin")
    else:
        if person.role == Role.ADMIN and claims.role != Role.ADMIN and _last_admin(session, person.id):
            claims = replace(claims, role=Role.ADMIN)  # the team keeps an admin, as set_role does
        if person.role != claims.role.value:
            audit.record(session, "role", at=now, detail={"person": person.id, "email": person.email,
                                                          "from": person.role, "to": claims.role.value, "via": "sso"})
            person.role, person.epoch = claims.role.value, person.epoch + 1
        person.sso_subject, person.state = claims.subject, ACTIVE  # an invitation is taken up by signing in
    session.flush()
    return member(session, person.id)


def _last_admin(session: Session, person_id: int) -> bool:
    others = session.scalar(select(func.count()).select_from(Person).where(
        Person.role == Role.ADMIN.value, Person.state == ACTIVE, Person.id != person_id))
    return not others
