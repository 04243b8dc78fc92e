"""The emulator through plain HTTP and through the real sendgrid and firebase-admin SDKs."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import firebase_admin
import pytest
import requests.adapters
import sendgrid
from firebase_admin import credentials, exceptions, messaging
from google.auth import crypt
from google.auth import exceptions as google_auth_errors
from google.auth import jwt as google_jwt
from python_http_client import exceptions as sg_errors
from sendgrid.helpers.mail import Category, CustomArg, Mail, Personalization, Substitution, To
from urllib3.util.retry import Retry

PROJECT = "notifier-demo"
# firebase-admin 7.7 deprecates Message.token for Message.fid; the emulator takes both, the tests use token mostly.
pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")


class Emulator:
    """Where the emulator subprocess listens, with small JSON helpers."""

    def __init__(self, port: int, creds: Path) -> None:
        self.port, self.creds = port, creds
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, head, payload = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            status, head, payload = exc.code, dict(exc.headers), exc.read()
        return status, head, json.loads(payload) if payload else None

    def faults(self, config: dict[str, Any]) -> dict[str, Any]:
        status, _, body = self.call("POST", "/_emulator/faults", config)
        assert status == 200, body
        return body

    def stats(self) -> dict[str, Any]:
        return self.call("GET", "/_emulator/stats")[2]

    def messages(self, query: str = "") -> dict[str, Any]:
        return self.call("GET", f"/_emulator/messages{query}")[2]

    def mail(self, body: Any, key: str = "SG.test") -> tuple[int, dict[str, str], Any]:
        return self.call("POST", "/v3/mail/send", body, {"Authorization": f"Bearer {key}",
                                                         "Content-Type": "application/json"})

    def push(self, body: Any, token: str) -> tuple[int, dict[str, str], Any]:
        return self.call("POST", f"/v1/projects/{PROJECT}/messages:send", body,
                         {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    port = _free_port()
    folder = tmp_path_factory.mktemp("emulator")
    creds, log = folder / "creds.json", folder / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "notifier", "emulator", "--port", str(port),
                                 "--write-credentials", str(creds)], stdout=out, stderr=subprocess.STDOUT)
    emu = Emulator(port, creds)
    deadline = time.monotonic() + 20
    while True:
        try:
            emu.stats()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"emulator did not start: {log.read_text()}")
            time.sleep(0.05)
    yield emu
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, log.read_text()
    assert f"emulator listening on http://127.0.0.1:{port}\n" in log.read_text()


@pytest.fixture(autouse=True)
def _fresh(emulator: Emulator) -> None:
    assert emulator.call("POST", "/_emulator/reset")[0] == 204


@pytest.fixture(scope="module")
def fcm_app(emulator: Emulator) -> Iterator[Any]:
    """A firebase-admin app whose credentials and FCM URL point at the emulator (SDK retries left as shipped)."""
    app = firebase_admin.initialize_app(credentials.Certificate(str(emulator.creds)), options={"projectId": PROJECT},
                                        name=f"emulator-{uuid.uuid4()}")
    messaging._get_messaging_service(app)._fcm_url = f"{emulator.base}/v1/projects/{PROJECT}/messages:send"
    yield app
    firebase_admin.delete_app(app)


@pytest.fixture(scope="module")
def fcm_app_no_retries(emulator: Emulator) -> Iterator[Any]:
    """Like fcm_app, but urllib3 does not retry 429/500/503 itself, so each error surfaces at once."""
    app = firebase_admin.initialize_app(credentials.Certificate(str(emulator.creds)), options={"projectId": PROJECT},
                                        name=f"emulator-{uuid.uuid4()}")
    service = messaging._get_messaging_service(app)
    service._fcm_url = f"{emulator.base}/v1/projects/{PROJECT}/messages:send"
    service._client.session.mount(emulator.base, requests.adapters.HTTPAdapter(
        max_retries=Retry(total=0, raise_on_status=False, respect_retry_after_header=False)))
    yield app
    firebase_admin.delete_app(app)


def _access_token(emulator: Emulator) -> str:
    return credentials.Certificate(str(emulator.creds)).get_access_token().access_token


def _mail(**extra: Any) -> dict[str, Any]:
    body = {"personalizations": [{"to": [{"email": "ann@example.org"}]}], "from": {"email": "news@example.com"},
            "subject": "Hello", "content": [{"type": "text/plain", "value": "Hi"}]}
    body.update(extra)
    return body


def _fields(answer: Any) -> list[str | None]:
    return [e["field"] for e in answer["errors"]]


# --- public surface ------------------------------------------------------------------------------------------


def test_public_names_import() -> None:
    import notifier.emulator as emu

    assert set(emu.__all__) >= {"EmulatorState", "make_app", "serve", "write_credentials"}
    for name in emu.__all__:
        assert getattr(emu, name) is not None


def test_written_credentials_are_a_service_account_pointing_at_the_emulator(emulator: Emulator) -> None:
    info = json.loads(emulator.creds.read_text())
    assert info["type"] == "service_account"
    assert info["project_id"] == PROJECT
    assert info["client_email"] == f"notifier@{PROJECT}.iam.gserviceaccount.com"
    assert info["token_uri"] == f"{emulator.base}/token"
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert os.stat(emulator.creds).st_mode & 0o077 == 0


# --- SendGrid through the SDK ----------------------------------------------------------------------------------


def test_sendgrid_sdk_send_is_accepted_and_logged_per_personalization(emulator: Emulator) -> None:
    mail = Mail(from_email="news@example.com", subject="Hi -name-", html_content="<p>Hi -name- &amp; co</p>",
                plain_text_content="Hi -name-")
    for name, email in (("Ann", "ann@example.org"), ("<Bob>", "bob@example.org")):
        p = Personalization()
        p.add_to(To(email))
        p.add_substitution(Substitution("-name-", name))
        p.add_custom_arg(CustomArg("recipient", name))
        mail.add_personalization(p)
    mail.custom_arg = CustomArg("campaign", "tiktok-music")
    mail.category = Category("deadline")
    client = sendgrid.SendGridAPIClient(api_key="SG.test", host=emulator.base)

    resp = client.send(mail)

    assert resp.status_code == 202
    message_id = resp.headers["X-Message-Id"]
    assert len(message_id) == 22
    logged = {e["to"][0]: e for e in emulator.messages()["emails"]}  # the helper prepends personalizations
    ann, bob = logged["ann@example.org"], logged["bob@example.org"]
    assert ann["to"] == ["ann@example.org"] and ann["message_id"] == message_id
    assert ann["custom_args"] == {"campaign": "tiktok-music", "recipient": "Ann"}
    assert ann["subject"] == "Hi Ann" and ann["text"] == "Hi Ann"
    assert bob["html"] == "<p>Hi <Bob> &amp; co</p>"  # substitutions are inserted verbatim, unescaped
    assert bob["categories"] == ["deadline"]
    assert bob["content_types"] == ["text/plain", "text/html"]
    assert emulator.stats()["emails_accepted"] == 2


def test_sendgrid_sdk_bad_payload_raises_bad_request_naming_the_field(emulator: Emulator) -> None:
    client = sendgrid.SendGridAPIClient(api_key="SG.test", host=emulator.base)
    body = _mail()
    del body["from"]
    with pytest.raises(sg_errors.BadRequestsError) as caught:
        client.client.mail.send.post(request_body=body)
    assert _fields(json.loads(caught.value.body)) == ["from.email"]
    assert emulator.messages()["emails"] == []


def test_sendgrid_sdk_wrong_key_is_unauthorized(emulator: Emulator) -> None:
    client = sendgrid.SendGridAPIClient(api_key="not-a-key", host=emulator.base)
    with pytest.raises(sg_errors.UnauthorizedError) as caught:
        client.send(Mail("news@example.com", "ann@example.org", "Hi", plain_text_content="Hi"))
    assert json.loads(caught.value.body) == {"errors": [{
        "message": "The provided authorization grant is invalid, expired, or revoked", "field": None, "help": None}]}


def test_sendgrid_reject_api_key_fault_refuses_even_a_well_formed_key(emulator: Emulator) -> None:
    emulator.faults({"sendgrid": {"reject_api_key": True}})
    client = sendgrid.SendGridAPIClient(api_key="SG.test", host=emulator.base)
    with pytest.raises(sg_errors.UnauthorizedError) as caught:
        client.send(Mail("news@example.com", "ann@example.org", "Hi", plain_text_content="Hi"))
    assert caught.value.status_code == 401
    assert json.loads(caught.value.body) == {"errors": [{
        "message": "The provided authorization grant is invalid, expired, or revoked", "field": None, "help": None}]}
    assert emulator.messages()["emails"] == []
    assert emulator.stats()["faults"] == {"sendgrid": {"reject_api_key": 1}}
    emulator.faults({"sendgrid": {"reject_api_key": False}})
    assert emulator.mail(_mail())[0] == 202


def test_sendgrid_sdk_403_fault_raises_forbidden_blaming_the_sender(emulator: Emulator) -> None:
    emulator.faults({"sendgrid": {"403": 1.0}})
    client = sendgrid.SendGridAPIClient(api_key="SG.test", host=emulator.base)
    with pytest.raises(sg_errors.ForbiddenError) as caught:
        client.send(Mail("news@example.com", "ann@example.org", "Hi", plain_text_content="Hi"))
    [error] = json.loads(caught.value.body)["errors"]
    assert error["field"] == "from" and error["message"].startswith(
        "The from address does not match a verified Sender Identity.")
    assert "Retry-After" not in caught.value.headers
    assert emulator.messages()["emails"] == []
    assert emulator.stats()["faults"] == {"sendgrid": {"403": 1}}


def test_sendgrid_sdk_rate_limit_fault_raises_too_many_requests_with_reset(emulator: Emulator) -> None:
    emulator.faults({"sendgrid": {"429": 1.0, "retry_after": 7}})
    client = sendgrid.SendGridAPIClient(api_key="SG.test", host=emulator.base)
    with pytest.raises(sg_errors.TooManyRequestsError) as caught:
        client.send(Mail("news@example.com", "ann@example.org", "Hi", plain_text_content="Hi"))
    headers = caught.value.headers
    assert headers["Retry-After"] == "7"
    assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Limit"]
    assert abs(int(headers["X-RateLimit-Reset"]) - (time.time() + 7)) < 3
    assert emulator.messages()["emails"] == []
    assert emulator.stats()["faults"] == {"sendgrid": {"429": 1}}


# --- SendGrid's rules over plain HTTP ---------------------------------------------------------------------------


def _many(n: int) -> list[dict[str, Any]]:
    return [{"to": [{"email": f"r{i}@example.org"}]} for i in range(n)]


@pytest.mark.parametrize(("change", "field"), [
    ({"personalizations": []}, "personalizations"),
    ({"personalizations": _many(1001)}, "personalizations"),
    ({"personalizations": [{"to": []}]}, "personalizations.0.to"),
    ({"personalizations": [{"to": [{"email": "not-an-address"}]}]}, "personalizations.0.to.0.email"),
    ({"personalizations": [{"to": [{"email": f"r{i}@x.org"} for i in range(600)],
                            "cc": [{"email": f"c{i}@x.org"} for i in range(401)]}]}, "personalizations"),
    ({"personalizations": [{"to": [{"email": "a@x.org"}], "bcc": [{"email": "A@x.org"}]}]}, "personalizations.0"),
    ({"from": {"name": "No address"}}, "from.email"),
    ({"subject": None}, "subject"),
    ({"content": []}, "content"),
    ({"content": [{"type": "text/plain", "value": ""}]}, "content.0.value"),
    ({"content": [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]},
     "content.1.type"),
    ({"custom_args": {"n": 1}}, "custom_args.n"),
    ({"custom_args": {"big": "x" * 10_000}}, "custom_args"),
    ({"personalizations": [{"to": [{"email": "a@x.org"}], "custom_args": {"b": "y" * 9_995}}],
      "custom_args": {"a": "x"}}, "personalizations.0.custom_args"),
    ({"categories": [f"c{i}" for i in range(11)]}, "categories"),
    ({"categories": ["x" * 256]}, "categories.0"),
    ({"asm": {"group_id": "12"}}, "asm.group_id"),
    ({"headers": {"X-Count": 3}}, "headers.X-Count"),
    ({"personalizations": [{"to": [{"email": "a@x.org"}], "headers": {"X-Id": 1}}]}, "personalizations.0.headers.X-Id"),
    ({"personalizations": [{"to": [{"email": "a@x.org"}], "substitutions": {"-n-": 5}}]},
     "personalizations.0.substitutions.-n-"),
])
def test_sendgrid_refuses_what_sendgrid_refuses(emulator: Emulator, change: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in _mail(**change).items() if v is not None}
    status, _, answer = emulator.mail(body)
    assert status == 400
    assert field in _fields(answer)
    assert all(set(e) == {"message", "field", "help"} and e["help"] is None for e in answer["errors"])


def test_sendgrid_lists_every_problem_at_once(emulator: Emulator) -> None:
    status, _, answer = emulator.mail({"personalizations": [{"to": [{"email": "x"}]}], "categories": [1]})
    assert status == 400
    assert set(_fields(answer)) >= {"from.email", "content", "categories.0", "personalizations.0.to.0.email",
                                    "subject"}


def test_sendgrid_subject_may_come_from_every_personalization_and_content_from_a_template(emulator: Emulator) -> None:
    body = _mail(personalizations=[{"to": [{"email": "a@x.org"}], "subject": "A"}], template_id="d-123")
    del body["subject"], body["content"]
    assert emulator.mail(body)[0] == 202
    assert emulator.messages()["emails"][0]["subject"] == "A"


def test_sendgrid_accepts_a_thousand_personalizations_and_logs_each(emulator: Emulator) -> None:
    status, headers, _ = emulator.mail(_mail(personalizations=_many(1000), custom_args={"wave": "P7D"}))
    assert status == 202 and headers["X-Message-Id"]
    assert emulator.stats()["emails_accepted"] == 1000


def test_sendgrid_body_over_30_mb_is_too_large(emulator: Emulator) -> None:
    status, _, answer = emulator.call("POST", "/v3/mail/send", raw=b" " * (30 * 1024 * 1024 + 1),
                                      headers={"Authorization": "Bearer SG.test"})
    assert status == 413
    assert answer["errors"][0]["field"] is None


def test_sendgrid_drop_fault_closes_the_connection_without_answer(emulator: Emulator) -> None:
    emulator.faults({"sendgrid": {"drop": 1.0}})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        emulator.mail(_mail())
    assert emulator.stats()["faults"] == {"sendgrid": {"drop": 1}}
    assert emulator.messages()["emails"] == []


def test_latency_fault_delays_the_answer(emulator: Emulator) -> None:
    emulator.faults({"sendgrid": {"latency_ms": 300}})
    started = time.monotonic()
    assert emulator.mail(_mail())[0] == 202
    assert time.monotonic() - started >= 0.3


# --- faults, reset, paging -----------------------------------------------------------------------------------


def _statuses(emulator: Emulator, n: int) -> list[int]:
    return [emulator.mail(_mail())[0] for _ in range(n)]


def test_faults_with_a_seed_are_deterministic(emulator: Emulator) -> None:
    config = {"sendgrid": {"429": 0.2, "500": 0.2, "503": 0.2}, "seed": 42}
    emulator.faults(config)
    first = _statuses(emulator, 40)
    emulator.faults(config)
    assert _statuses(emulator, 40) == first
    assert {202, 429, 500, 503} <= set(first)
    assert emulator.stats()["emails_accepted"] == 2 * first.count(202)


def test_fault_updates_merge_and_bad_ones_are_refused(emulator: Emulator) -> None:
    emulator.faults({"sendgrid": {"429": 0.5}})
    merged = emulator.faults({"sendgrid": {"500": 0.25}, "fcm": {"unregistered_tokens": ["t1"]}})
    assert merged["sendgrid"]["429"] == 0.5 and merged["sendgrid"]["500"] == 0.25
    assert merged["fcm"]["unregistered_tokens"] == ["t1"]
    for bad in ({"sendgrid": {"418": 0.1}}, {"fcm": {"503": 1.5}}, {"sendgrid": {"429": 0.6, "500": 0.6}},
                {"sendgrid": {"unregistered_tokens": []}}, {"seed": "x"}, {"sendgrid": {"401": 0.1}},
                {"sendgrid": {"reject_api_key": 1}}, {"fcm": {"reject_api_key": True}},
                {"sendgrid": {"reject_token_exchange": True}}, {"fcm": {"401": 0.6, "403": 0.6}}):
        status, _, answer = emulator.call("POST", "/_emulator/faults", bad)
        assert status == 400, bad
        assert answer["error"]
    assert emulator.call("GET", "/_emulator/faults")[2] == merged
    assert (merged["sendgrid"]["403"], merged["sendgrid"]["reject_api_key"]) == (0.0, False)
    assert (merged["fcm"]["401"], merged["fcm"]["403"], merged["fcm"]["reject_token_exchange"]) == (0.0, 0.0, False)
    assert "401" not in merged["sendgrid"] and "reject_api_key" not in merged["fcm"]


def test_reset_clears_log_stats_and_faults_but_keeps_issued_tokens(emulator: Emulator) -> None:
    token = _access_token(emulator)
    emulator.mail(_mail())
    emulator.faults({"sendgrid": {"500": 1.0}})
    assert emulator.mail(_mail())[0] == 500
    assert emulator.call("POST", "/_emulator/reset")[0] == 204
    stats = emulator.stats()
    assert (stats["requests"], stats["emails_accepted"], stats["faults"]) == ({}, 0, {})
    assert emulator.mail(_mail())[0] == 202
    assert emulator.push({"message": {"token": "t"}}, token)[0] == 200


def test_messages_can_be_paged(emulator: Emulator, fcm_app: Any) -> None:
    emulator.mail(_mail(personalizations=_many(25)))
    for i in range(5):
        messaging.send(messaging.Message(token=f"tok{i}"), app=fcm_app)
    seen, since = [], 0
    while True:
        page = emulator.messages(f"?since_email={since}&since_push=5&limit=10")
        assert page["pushes"] == [] and page["total_emails"] == 25
        if not page["emails"]:
            break
        seen += [e["to"][0] for e in page["emails"]]
        since = page["next_email"]
    assert seen == [f"r{i}@example.org" for i in range(25)]
    assert [p["token"] for p in emulator.messages("?since_push=3")["pushes"]] == ["tok3", "tok4"]
    assert emulator.call("GET", "/_emulator/messages?since_email=-1")[0] == 400


def test_stats_count_requests_per_endpoint_and_status(emulator: Emulator) -> None:
    emulator.mail(_mail())
    emulator.mail(_mail(), key="bad")
    emulator.mail({})
    assert emulator.stats()["requests"]["sendgrid"] == {"202": 1, "400": 1, "401": 1}


# --- Google token endpoint --------------------------------------------------------------------------------------


def _assertion(private_key_pem: str, key_id: str, token_uri: str) -> str:
    now = int(time.time())
    signer = crypt.RSASigner.from_string(private_key_pem, key_id)
    claims = {"iss": "notifier@x.iam.gserviceaccount.com", "aud": token_uri, "iat": now, "exp": now + 3600,
              "scope": "https://www.googleapis.com/auth/firebase.messaging"}
    return google_jwt.encode(signer, claims).decode()


def _token_request(emulator: Emulator, assertion: str) -> tuple[int, Any]:
    form = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                   "assertion": assertion}).encode()
    status, _, body = emulator.call("POST", "/token", raw=form,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    return status, body


def test_token_endpoint_issues_tokens_for_the_written_credentials(emulator: Emulator) -> None:
    info = json.loads(emulator.creds.read_text())
    status, body = _token_request(emulator, _assertion(info["private_key"], info["private_key_id"], info["token_uri"]))
    assert status == 200
    assert body["access_token"].startswith("emu-") and body["expires_in"] == 3600 and body["token_type"] == "Bearer"


def test_reject_token_exchange_fault_makes_google_auth_raise_refresh_error(emulator: Emulator) -> None:
    emulator.faults({"fcm": {"reject_token_exchange": True}})
    info = json.loads(emulator.creds.read_text())
    status, body = _token_request(emulator, _assertion(info["private_key"], info["private_key_id"], info["token_uri"]))
    assert (status, body) == (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    with pytest.raises(google_auth_errors.RefreshError, match=r"invalid_grant: Invalid JWT Signature\."):
        _access_token(emulator)
    assert emulator.stats()["faults"] == {"fcm": {"reject_token_exchange": 2}}
    assert emulator.stats()["requests"]["token"] == {"400": 2}


def test_token_endpoint_rejects_an_assertion_signed_with_another_key(emulator: Emulator, tmp_path: Path) -> None:
    from notifier.emulator import write_credentials

    info = json.loads(emulator.creds.read_text())
    other = write_credentials(tmp_path / "other.json", info["token_uri"])
    for key_id in (info["private_key_id"], other["private_key_id"]):
        status, body = _token_request(emulator, _assertion(other["private_key"], key_id, info["token_uri"]))
        assert (status, body) == (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    assert _token_request(emulator, "not.a.jwt")[0] == 400


# --- FCM through firebase-admin -------------------------------------------------------------------------------


def test_fcm_sdk_send_returns_the_name_and_is_logged(emulator: Emulator, fcm_app: Any) -> None:
    message = messaging.Message(token="device-1", notification=messaging.Notification(title="Hi", body="Soon"),
                                data={"campaign": "c1"}, android=messaging.AndroidConfig(ttl=3600, priority="high"),
                                apns=messaging.APNSConfig(headers={"apns-priority": "10"}))
    name = messaging.send(message, app=fcm_app)
    assert name.startswith(f"projects/{PROJECT}/messages/")
    (push,) = emulator.messages()["pushes"]
    assert push["name"] == name and push["token"] == "device-1"
    assert push["notification"] == {"title": "Hi", "body": "Soon"}
    assert push["data"] == {"campaign": "c1"}
    assert push["android"]["ttl"] == "3600s" and push["apns"]["headers"] == {"apns-priority": "10"}


def test_fcm_sdk_send_to_an_installation_id(emulator: Emulator, fcm_app: Any) -> None:
    emulator.faults({"fcm": {"unregistered_tokens": ["fid-gone"]}})
    messaging.send(messaging.Message(fid="fid-1"), app=fcm_app)
    with pytest.raises(messaging.UnregisteredError):
        messaging.send(messaging.Message(fid="fid-gone"), app=fcm_app)
    (push,) = emulator.messages()["pushes"]
    assert push["fid"] == "fid-1" and push["token"] is None


def test_fcm_sdk_dry_run_is_validated_not_logged(emulator: Emulator, fcm_app: Any) -> None:
    name = messaging.send(messaging.Message(topic="news"), dry_run=True, app=fcm_app)
    assert name == f"projects/{PROJECT}/messages/fake_message_id"
    assert emulator.messages()["pushes"] == []


@pytest.mark.parametrize(("faults", "error"), [
    ({"unregistered_tokens": ["device-1"]}, messaging.UnregisteredError),
    ({"invalid_tokens": ["device-1"]}, exceptions.InvalidArgumentError),
    ({"sender_mismatch_tokens": ["device-1"]}, messaging.SenderIdMismatchError),
    ({"429": 1.0}, messaging.QuotaExceededError),
    ({"503": 1.0}, exceptions.UnavailableError),
    ({"500": 1.0}, exceptions.InternalError),
    ({"401": 1.0}, exceptions.UnauthenticatedError),
    ({"403": 1.0}, exceptions.PermissionDeniedError),
])
def test_fcm_sdk_raises_its_own_exception_for_each_fault(emulator: Emulator, fcm_app_no_retries: Any,
                                                         faults: dict[str, Any], error: type) -> None:
    emulator.faults({"fcm": faults})
    with pytest.raises(error):
        messaging.send(messaging.Message(token="device-1"), app=fcm_app_no_retries)
    assert emulator.messages()["pushes"] == []
    assert emulator.stats()["faults"]["fcm"]


def test_fcm_sdk_retries_503_four_times_honouring_retry_after(emulator: Emulator, fcm_app: Any) -> None:
    emulator.faults({"fcm": {"503": 1.0, "retry_after": 1}})
    started = time.monotonic()
    with pytest.raises(exceptions.UnavailableError) as caught:
        messaging.send(messaging.Message(token="device-1"), app=fcm_app)
    assert time.monotonic() - started >= 4
    assert caught.value.http_response.headers["Retry-After"] == "1"
    assert emulator.stats()["requests"]["fcm"] == {"503": 5}


def test_fcm_refuses_a_token_it_did_not_issue(emulator: Emulator) -> None:
    status, _, body = emulator.push({"message": {"token": "t"}}, "made-up")
    assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(("message", "field"), [
    ({"token": "t", "topic": "news"}, "message"),
    ({}, "message"),
    ({"token": "t", "android": {"ttl": "10m"}}, "message.android.ttl"),
    ({"token": "t", "android": {"priority": "urgent"}}, "message.android.priority"),
    ({"token": "t", "apns": {"headers": {"apns-priority": 10}}}, "message.apns.headers[apns-priority]"),
    ({"token": "t", "data": {"n": 1}}, "message.data[n]"),
    ({"token": "t", "webpush": {"fcm_options": {"link": "http://music.example.com/refund"}}},
     "message.webpush.fcm_options.link"),
])
def test_fcm_refuses_invalid_messages(emulator: Emulator, message: dict[str, Any], field: str) -> None:
    status, _, body = emulator.push({"message": message}, _access_token(emulator))
    assert status == 400
    error = body["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0] == {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                   "errorCode": "INVALID_ARGUMENT"}
    assert field in [v["field"] for v in error["details"][1]["fieldViolations"]]


def test_fcm_accepts_fractional_ttl(emulator: Emulator) -> None:
    status, _, body = emulator.push({"message": {"token": "t", "android": {"ttl": "1.5s", "priority": "normal"}}},
                                    _access_token(emulator))
    assert status == 200 and body["name"].startswith(f"projects/{PROJECT}/messages/")
