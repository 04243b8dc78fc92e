"""A synthetic audience for the benchmark, written as a stream: five countries, four locales and a few odd ones,
about thirty zones, 0–3 push tokens, realistic and non-ASCII names. The same seed gives the same file."""

from __future__ import annotations

import csv
import random
import string
from pathlib import Path

# (country, share, locales with weights, zones with weights): shares follow the campaign's markets.
MARKETS = (
    ("ID", 0.34, (("id", 0.85), ("en", 0.08), ("jv", 0.04), ("in-ID", 0.03)),
     (("Asia/Jakarta", 0.6), ("Asia/Makassar", 0.25), ("Asia/Jayapura", 0.1), ("Asia/Pontianak", 0.05))),
    ("BR", 0.30, (("pt-BR", 0.85), ("pt", 0.08), ("en", 0.04), ("es", 0.03)),
     (("America/Sao_Paulo", 0.6), ("America/Bahia", 0.08), ("America/Fortaleza", 0.08), ("America/Manaus", 0.07),
      ("America/Recife", 0.06), ("America/Belem", 0.04), ("America/Cuiaba", 0.03), ("America/Porto_Velho", 0.02),
      ("America/Rio_Branco", 0.01), ("America/Noronha", 0.01))),
    ("MX", 0.20, (("es-MX", 0.8), ("es", 0.1), ("es-419", 0.05), ("en-US", 0.05)),
     (("America/Mexico_City", 0.6), ("America/Monterrey", 0.12), ("America/Tijuana", 0.1),
      ("America/Cancun", 0.06), ("America/Chihuahua", 0.05), ("America/Hermosillo", 0.04),
      ("America/Mazatlan", 0.03))),
    ("AU", 0.10, (("en-AU", 0.85), ("en", 0.1), ("zh-Hans-AU", 0.05)),
     (("Australia/Sydney", 0.4), ("Australia/Melbourne", 0.3), ("Australia/Brisbane", 0.12),
      ("Australia/Perth", 0.1), ("Australia/Adelaide", 0.05), ("Australia/Hobart", 0.02),
      ("Australia/Darwin", 0.01))),
    ("SG", 0.06, (("en-SG", 0.7), ("en", 0.15), ("zh-SG", 0.1), ("ms-SG", 0.05)), (("Asia/Singapore", 1.0),)),
)
NAMES = {
    "ID": (("Putri", "Nur", "Agus", "Siti", "Dewi", "Rizky", "Ayu", "Bima"),
           ("Kusuma", "Hidayat", "Santoso", "Wijaya", "Saputra", "Lestari", "Pratama")),
    "BR": (("Gabriel", "João", "Maria", "Luíza", "Ana", "Thiago", "Conceição", "Raí"),
           ("Oliveira", "Araújo", "Gonçalves", "Conceição", "Simões", "Magalhães", "Brandão")),
    "MX": (("José", "María", "Sofía", "Andrés", "Ximena", "Íñigo", "Renée"),
           ("Hernández", "Muñoz", "Peña", "Nuñez", "Ibáñez", "Álvarez", "Gutiérrez")),
    "AU": (("Noah", "Charlotte", "Oliver", "Chloé", "Zoë", "Liam", "Siobhán"),
           ("Taylor", "O'Brien", "Nguyen", "Smith", "McKenzie", "Brown")),
    "SG": (("Wei Ling", "Jun Jie", "Siti Nurhaliza", "Ravi", "Mei", "Darren"),
           ("Tan", "Lim", "Ng", "Krishnan", "陈", "Wong")),
}
FIELDS = ("id", "email", "name", "locale", "timezone", "country", "push_tokens", "joined_at", "attributes.plan")
_TOKEN = string.ascii_letters + string.digits + "-_"


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def write_audience(path: Path, n: int, seed: int = 14) -> Path:
    """Write ``n`` recipients to a CSV at ``path``, one row at a time (memory stays flat at any ``n``)."""
    rng = random.Random(seed)
    countries = [m[0] for m in MARKETS]
    shares = [m[1] for m in MARKETS]
    markets = {m[0]: m for m in MARKETS}
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(FIELDS)
        for i in range(1, n + 1):
            country = rng.choices(countries, shares)[0]
            _, _, locales, tzs = markets[country]
            first, last = NAMES[country]
            name = f"{rng.choice(first)} {rng.choice(last)}"
            email = f"user{i}@{rng.choice(('example.com', 'example.org', 'example.net'))}" \
                if rng.random() < 0.93 else ""
            tokens = "|".join("bench-" + "".join(rng.choices(_TOKEN, k=40))
                              for _ in range(rng.choices((0, 1, 2, 3), (0.25, 0.45, 0.22, 0.08))[0]))
            out.writerow((f"b{i:08d}", email, name, _pick(rng, locales), _pick(rng, tzs), country, tokens,
                          "2024-01-15T00:00:00Z", rng.choice(("premium", "family", "student"))))
    return path
