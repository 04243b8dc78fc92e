"""Generate the synthetic demo audience for the TikTok Music shutdown campaign.

Run it from the repository root (it needs only the standard library):

    .venv/bin/python scripts/make_demo_audience.py              # writes notifier/demo/
    .venv/bin/python scripts/make_demo_audience.py --out-dir /tmp/demo

It writes two files, byte for byte the same on every run (random.Random(2024), no clock, no environment):

``audience.csv``
    ``id,email,name,locale,timezone,country,push_tokens,joined_at,attributes.plan,refund_amount,refund_currency``:
    2,000 data rows, 1,984 of
    them valid, for Indonesia (~40%), Brazil (~25%), Mexico (~15%), Australia (~12%) and Singapore (~8%).
    ``push_tokens`` holds 0-2 tokens separated by ``|``; ``joined_at`` is ISO-8601 UTC with a ``Z``;
    ``attributes.plan`` (premium/family/student) is an attribute column. About 3% of the valid rows have an empty
    timezone, to be derived from the country. The id of every row is ``u`` + its data-row number (line - 1),
    so the ids that the duplicate-id and empty-id rows would have had appear nowhere. Two valid rows have
    hostile names (``<script>alert(1)</script>`` and ``{{ 7*7 }}``) to exercise escaping in templates.

``actions.csv``
    ``recipient_id,action,at``: ``playlist_transferred`` (about 25% of the valid recipients, at a time
    in [2024-09-28, 2024-10-27) UTC) and ``refund_requested`` (about 15%, in [2024-09-28, 2024-11-27) UTC).
    Only ids of valid rows appear, never before the recipient's ``joined_at``, and never the id that the
    duplicate-id bad row repeats. Every action time is before the matching deadline in every recipient's
    time zone (the earliest deadline, UTC+11, is 13:00 UTC on the 27th).

Bad rows in audience.csv (16, spread through the file, one problem each; every other field is valid).
The script prints each one with its physical line number (the header is line 1):

    bad-email-no-at        email "not-an-email"
    bad-email-double-at    email "ana@@example.com"
    bad-email-space        email with a space in the local part
    bad-email-no-domain    email with nothing after the "@"
    bad-tz-unknown         timezone "Mars/Olympus"
    bad-tz-typo            timezone "Asia/Jakart"
    bad-tz-offset          timezone "UTC+7" (an offset, not an IANA name)
    bad-tz-path            timezone "../../etc/passwd" (zoneinfo raises ValueError, not ZoneInfoNotFoundError)
    duplicate-id           repeats the id of an earlier valid row (a different person)
    no-channel             neither an email nor a push token
    empty-id               empty id
    unknown-country        country "ZZ" with an empty timezone (no zone can be derived)
    missing-country        empty country and empty timezone
    bad-joined-at-date     joined_at "2024-02-30T00:00:00Z" (no such day)
    bad-joined-at-format   joined_at "15/01/2024" (not ISO-8601)
    short-row              only 4 of the 9 fields (the rest of the line is missing)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import string
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 2024
N_ROWS = 2000  # data rows in audience.csv, bad rows included
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = ROOT / "notifier" / "demo"

AUDIENCE_HEADER = ["id", "email", "name", "locale", "timezone", "country", "push_tokens", "joined_at",
                   "attributes.plan", "refund_amount", "refund_currency"]
ACTIONS_HEADER = ["recipient_id", "action", "at"]

COUNTRY_WEIGHTS: dict[str, int] = {"ID": 40, "BR": 25, "MX": 15, "AU": 12, "SG": 8}

TIMEZONE_WEIGHTS: dict[str, dict[str, float]] = {
    "ID": {"Asia/Jakarta": 75, "Asia/Makassar": 14, "Asia/Jayapura": 5, "Asia/Pontianak": 6},
    "BR": {"America/Sao_Paulo": 80, "America/Manaus": 8, "America/Recife": 10, "America/Noronha": 2},
    "MX": {"America/Mexico_City": 75, "America/Tijuana": 10, "America/Cancun": 8, "America/Hermosillo": 7},
    "AU": {
        "Australia/Sydney": 33,
        "Australia/Melbourne": 28,
        "Australia/Brisbane": 15,
        "Australia/Perth": 10,
        "Australia/Adelaide": 8,
        "Australia/Lord_Howe": 3,
        "Australia/Eucla": 3,
    },
    "SG": {"Asia/Singapore": 100},
}

LOCALE_WEIGHTS: dict[str, dict[str, float]] = {
    "ID": {"id": 82, "in": 8, "en": 10},  # "in" is the withdrawn ISO 639 code for Indonesian
    "BR": {"pt-BR": 85, "pt": 10, "pt_PT": 5},  # underscore on purpose: a POSIX-style tag
    "MX": {"es-MX": 80, "es": 14, "es-AR": 6},
    "AU": {"en-AU": 80, "en": 20},
    "SG": {"en-SG": 75, "zh-SG": 15, "ms": 10},  # zh-SG and ms have no templates: they fall back
}
EMPTY_LOCALE_RATE = 0.01
EMPTY_TIMEZONE_RATE = 0.035

FIRST_NAMES: dict[str, list[str]] = {
    "ID": ["Budi", "Siti", "Agus", "Dewi", "Putri", "Rizky", "Ayu", "Eko", "Sri", "Wahyu", "Indah", "Fajar",
           "Nur", "Made", "Ketut", "Yohanes"],
    "BR": ["João", "Maria", "José", "Ana", "Luíza", "Gabriel", "Lúcia", "Antônio", "Beatriz", "Thiago",
           "Camila", "Letícia", "Conceição", "Caio"],
    "MX": ["José", "María", "Sofía", "Juan", "Ximena", "Luis", "Guadalupe", "Andrés", "Fernanda", "Ángel",
           "Mateo", "Valentina", "Itzel"],
    "AU": ["Zoë", "Oliver", "Charlotte", "Jack", "Mia", "William", "Chloé", "Ruby", "Liam", "Isla", "Noah",
           "Matilda", "Siobhán"],
    "SG": ["Wei Ling", "Jun Jie", "Hui Min", "Aisyah", "Farhan", "Priya", "Arjun", "Mei Xin", "Darren",
           "Rachel", "Nurul"],
}
LAST_NAMES: dict[str, list[str]] = {
    "ID": ["Santoso", "Wijaya", "Saputra", "Hidayat", "Lestari", "Pratama", "Kusuma", "Nugroho", "Siregar",
           "Simanjuntak", "Halim", "Setiawan"],
    "BR": ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Gonçalves", "Araújo", "Ribeiro", "Magalhães",
           "Lima", "Fernandes", "Conceição"],
    "MX": ["Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez", "Sánchez", "Ramírez",
           "Cruz", "Muñoz", "Núñez"],
    "AU": ["Smith", "Nguyen", "Williams", "Brown", "Jones", "O'Brien", "Taylor", "Wilson", "Kelly",
           "Papadopoulos", "Murphy", "Müller"],
    "SG": ["Tan", "Lim", "Lee", "Ng", "Wong", "Rahman", "Ismail", "Kumar", "Pillai", "Goh"],
}
MONONYM_RATE_ID = 0.05  # many Indonesians have a single name

HOSTILE_NAMES = ["<script>alert(1)</script>", "{{ 7*7 }}"]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net"]
PLAN_WEIGHTS: dict[str, int] = {"premium": 60, "family": 25, "student": 15}
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"  # URL-safe

JOINED_DEFAULT = "2024-01-15T00:00:00Z"
LATE_JOINER_RATE = 0.05
LATE_FROM = datetime(2024, 10, 1, tzinfo=UTC)
LATE_UNTIL = datetime(2024, 11, 26, tzinfo=UTC)  # exclusive: late joiners join up to 25 Nov 23:59:59

ACTIONS: list[tuple[str, float, datetime, datetime]] = [
    # action, share of valid recipients, from (inclusive), until (exclusive)
    ("playlist_transferred", 0.25, datetime(2024, 9, 28, tzinfo=UTC), datetime(2024, 10, 27, tzinfo=UTC)),
    ("refund_requested", 0.15, datetime(2024, 9, 28, tzinfo=UTC), datetime(2024, 11, 27, tzinfo=UTC)),
]

BAD_KINDS = [
    "bad-email-no-at",
    "bad-email-double-at",
    "bad-email-space",
    "bad-email-no-domain",
    "bad-tz-unknown",
    "bad-tz-typo",
    "bad-tz-offset",
    "bad-tz-path",
    "duplicate-id",
    "no-channel",
    "empty-id",
    "unknown-country",
    "missing-country",
    "bad-joined-at-date",
    "bad-joined-at-format",
    "short-row",
]


@dataclass
class Person:
    id: str
    email: str
    name: str
    locale: str
    timezone: str
    country: str
    push_tokens: list[str]
    joined_at: str
    plan: str

    def row(self) -> list[str]:
        return [self.id, self.email, self.name, self.locale, self.timezone, self.country,
                "|".join(self.push_tokens), self.joined_at, self.plan, *refund_for(self)]


# What a month of each plan costs, per country and currency: the refund owed for an unused month.
MONTHLY_PRICE = {"ID": ("IDR", 49000), "BR": ("BRL", 16.90), "MX": ("MXN", 115), "AU": ("AUD", 11.99),
                 "SG": ("SGD", 10.98)}
PLAN_FACTOR = {"premium": 1.0, "family": 1.6, "student": 0.5}


def refund_for(person: Person) -> list[str]:
    """About half the paying recipients are owed a month back; derived from the id, so the random stream
    (and every other column) stays as it was."""
    currency, price = MONTHLY_PRICE.get(person.country, ("", 0))
    if not currency or int(hashlib.sha256(person.id.encode()).hexdigest(), 16) % 2:
        return ["", ""]
    amount = round(price * PLAN_FACTOR.get(person.plan, 1.0), 0 if currency == "IDR" else 2)
    return [f"{amount:.0f}" if currency == "IDR" else f"{amount:.2f}", currency]


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def weighted(rng: random.Random, weights: dict[str, float] | dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A whole-second instant in [start, end)."""
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def ascii_slug(text: str) -> str:
    """'João' -> 'joao', "O'Brien" -> 'obrien', 'Wei Ling' -> 'weiling'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed.lower() if c in string.ascii_lowercase)


class Generator:
    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.next_id = 1
        self.used_emails: set[str] = set()

    def new_id(self) -> str:
        value = f"u{self.next_id:05d}"
        self.next_id += 1
        return value

    def email_for(self, first: str, last: str) -> str:
        local = ".".join(part for part in (ascii_slug(first), ascii_slug(last)) if part) or "user"
        while True:
            email = f"{local}{self.rng.randint(1, 999)}@{self.rng.choice(EMAIL_DOMAINS)}"
            if email not in self.used_emails:
                self.used_emails.add(email)
                return email

    def push_tokens(self, count: int) -> list[str]:
        return ["demo-" + "".join(self.rng.choices(TOKEN_ALPHABET, k=40)) for _ in range(count)]

    def person(self, *, channels: str | None = None, country: str | None = None) -> Person:
        """A valid recipient; ``channels`` forces "both", "email" or "push", ``country`` forces the country."""
        rng = self.rng
        country = country or weighted(rng, COUNTRY_WEIGHTS)
        first = rng.choice(FIRST_NAMES[country])
        last = "" if country == "ID" and rng.random() < MONONYM_RATE_ID else rng.choice(LAST_NAMES[country])
        name = f"{first} {last}".strip()
        timezone = "" if rng.random() < EMPTY_TIMEZONE_RATE else weighted(rng, TIMEZONE_WEIGHTS[country])
        locale = "" if rng.random() < EMPTY_LOCALE_RATE else weighted(rng, LOCALE_WEIGHTS[country])
        if channels is None:
            channels = weighted(rng, {"both": 60, "email": 30, "push": 10})
        email = self.email_for(first, last) if channels in ("both", "email") else ""
        tokens = self.push_tokens(rng.randint(1, 2)) if channels in ("both", "push") else []
        joined = iso(between(rng, LATE_FROM, LATE_UNTIL)) if rng.random() < LATE_JOINER_RATE else JOINED_DEFAULT
        plan = weighted(rng, PLAN_WEIGHTS)
        return Person(self.new_id(), email, name, locale, timezone, country, tokens, joined, plan)

    def bad_row(self, kind: str, valid_so_far: list[Person]) -> list[str]:
        channels = "email" if kind.startswith("bad-email") else "both"
        p = self.person(channels=channels, country="ID" if kind in ("bad-tz-typo", "bad-tz-offset") else None)
        local = p.email.split("@", 1)[0]
        match kind:
            case "bad-email-no-at":
                p.email = "not-an-email"
            case "bad-email-double-at":
                p.email = "ana@@example.com"
            case "bad-email-space":
                p.email = local.replace(".", " ", 1) + "@example.com" if "." in local else f"{local} x@example.com"
            case "bad-email-no-domain":
                p.email = f"{local}@"
            case "bad-tz-unknown":
                p.timezone = "Mars/Olympus"
            case "bad-tz-typo":
                p.timezone = "Asia/Jakart"
            case "bad-tz-offset":
                p.timezone = "UTC+7"
            case "bad-tz-path":
                p.timezone = "../../etc/passwd"
            case "duplicate-id":
                p.id = self.rng.choice(valid_so_far).id
            case "no-channel":
                p.email, p.push_tokens = "", []
            case "empty-id":
                p.id = ""
            case "unknown-country":
                p.country, p.timezone = "ZZ", ""
            case "missing-country":
                p.country, p.timezone = "", ""
            case "bad-joined-at-date":
                p.joined_at = "2024-02-30T00:00:00Z"
            case "bad-joined-at-format":
                p.joined_at = "15/01/2024"
            case "short-row":
                return p.row()[:4]
            case _:
                raise ValueError(kind)
        return p.row()


@dataclass
class Result:
    audience: list[list[str]]
    actions: list[list[str]]
    bad: list[tuple[int, str, list[str]]]  # (physical line, kind, row)


def generate(seed: int = SEED) -> Result:
    gen = Generator(seed)
    rng = gen.rng
    kinds = BAD_KINDS[:]
    rng.shuffle(kinds)
    # One bad row in each of len(kinds) equal stretches of the file, somewhere in its middle.
    stretch = N_ROWS / len(kinds)
    bad_at = {int(i * stretch + stretch / 2) + rng.randint(-20, 20): kind for i, kind in enumerate(kinds)}

    audience: list[list[str]] = []
    valid: list[Person] = []
    position: dict[str, int] = {}  # valid id -> index in audience
    bad: list[tuple[int, str, list[str]]] = []
    duplicated: set[str] = set()
    for index in range(N_ROWS):
        kind = bad_at.get(index)
        if kind is None:
            person = gen.person()
            valid.append(person)
            position[person.id] = len(audience)
            audience.append(person.row())
        else:
            row = gen.bad_row(kind, valid)
            if kind == "duplicate-id":
                duplicated.add(row[0])
            audience.append(row)
            bad.append((index + 2, kind, row))

    # Hostile names go on two ordinary valid rows that have an email, so they end up in rendered messages.
    with_email = [p for p in valid if p.email and p.locale]
    for person, hostile in zip(rng.sample(with_email, len(HOSTILE_NAMES)), HOSTILE_NAMES, strict=True):
        person.name = hostile
        audience[position[person.id]] = person.row()

    actions: list[tuple[datetime, str, str]] = []
    for person in valid:
        if person.id in duplicated:
            continue
        joined = parse_iso(person.joined_at)
        for action, share, start, end in ACTIONS:
            if rng.random() >= share:
                continue
            start = max(start, joined)
            if start >= end:  # joined too late to have done it
                continue
            actions.append((between(rng, start, end), person.id, action))
    actions.sort()
    return Result(audience, [[pid, action, iso(at)] for at, pid, action in actions], bad)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="default: notifier/demo/")
    args = parser.parse_args(argv)
    result = generate()
    write_csv(args.out_dir / "audience.csv", AUDIENCE_HEADER, result.audience)
    write_csv(args.out_dir / "actions.csv", ACTIONS_HEADER, result.actions)
    print(f"wrote {args.out_dir / 'audience.csv'}: {len(result.audience)} rows, {len(result.bad)} of them bad")
    print(f"wrote {args.out_dir / 'actions.csv'}: {len(result.actions)} actions")
    for line, kind, row in result.bad:
        print(f"  line {line:>4}  {kind:<21} {','.join(row)}")


if __name__ == "__main__":
    main()
