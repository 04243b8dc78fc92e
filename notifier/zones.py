"""IANA time zones, named and loaded from the ``tzdata`` package only, so every host gives the same answer.

``zoneinfo.ZoneInfo(key)`` looks in the host's ``/usr/share/zoneinfo`` first, where a name that is no IANA zone
may still be a file (``localtime``, ``posixrules``, ``right/Asia/Jakarta``, an absolute path, and on a
case-insensitive disk ``asia/jakarta``), and the data may be an older release than the one we install. Here a
name is accepted only when it is listed in ``tzdata``'s own ``zones`` file (the canonical names and their
backward-compatible links such as ``Asia/Calcutta``), except ``Factory``, tzdata's placeholder for "no zone
configured"; the rules are read from that same package with ``ZoneInfo.from_file``.

A name that is not a zone gets a suggestion from :func:`closest` (``America/Sao_Paolo``: did you mean
``America/Sao_Paulo``?), in the one message :func:`reason` gives every door: audience rows and the campaign side.

One ZoneInfo per name (cached), so datetimes of one zone share one tzinfo. Zones made by ``from_file`` cannot be
pickled; notifier passes zone names between processes, never ZoneInfo objects.
"""

from __future__ import annotations

import difflib
from functools import cache, lru_cache
from importlib.resources import files
from zoneinfo import ZoneInfo

__all__ = ["closest", "is_iana_zone", "reason", "zone"]

_EXAMPLE = "for example Asia/Jakarta"
_LONGEST = 64  # characters; the longest zone name has 32
_REGIONS = frozenset({"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian",
                      "Pacific"})
_CUTOFF = 0.8  # difflib's similarity for a suggestion: Sao_Paolo → Sao_Paulo, not Asia → Asia/Dili
# The zone to assume for our own countries when a recipient has none: where most of the audience lives.
COUNTRY_ZONES = {"ID": "Asia/Jakarta", "BR": "America/Sao_Paulo", "AU": "Australia/Sydney", "SG": "Asia/Singapore",
                 "MX": "America/Mexico_City"}
# In tzdata's list but not a place: a recipient "in" it would get messages at the wrong hour.
_NOT_PLACES = {"Factory": "tzdata's placeholder for an unconfigured host"}
# Names that are files in a system zoneinfo folder but not IANA zones.
_HOST_FILES = {"localtime": "the host's own zone", "posixrules": "a rules template of the host",
               "leapseconds": "a data file", "tzdata.zi": "a data file", "zone.tab": "a data file",
               "zone1970.tab": "a data file", "iso3166.tab": "a data file"}


@cache
def _names() -> frozenset[str]:
    """Every zone name the installed tzdata release lists, one per line of its ``zones`` file."""
    return frozenset((files("tzdata") / "zones").read_text(encoding="utf-8").split())


@cache
def _by_casefold() -> dict[str, str]:
    return {name.casefold(): name for name in _names()}


@cache
def _places() -> dict[str, str]:
    """The zones worth suggesting, by folded name: places in a region (never Etc/GMT+7, which is UTC-7, nor EST)."""
    return {name.casefold(): name for name in _names() if name.partition("/")[0] in _REGIONS}


@cache
def _by_city() -> dict[str, str]:
    """The same by their last part (``sao_paulo`` → America/Sao_Paulo); of names sharing one, the first in order."""
    cities: dict[str, str] = {}
    for name in sorted(_places().values()):
        cities.setdefault(name.rpartition("/")[2].casefold(), name)
    return cities


def reason(name: object) -> str | None:
    """Why ``name`` is not an IANA time zone we accept, in one line; None when it is one."""
    if not isinstance(name, str):
        return f"expected a time zone name, got {type(name).__name__}"
    if not name:
        return f"an empty name is not an IANA time zone ({_EXAMPLE})"
    shown = repr(name) if len(name) <= 64 else f"{name[:64]!r}…"
    if name in _NOT_PLACES:
        return f"{shown} is not an IANA time zone of a place ({_NOT_PLACES[name]}; {_EXAMPLE})"
    if name in _names():
        return None
    if name.startswith(("/", "\\")) or "\\" in name or name.startswith(".") or "/." in name:
        return f"{shown} is not an IANA time zone (a file path, not a zone name; {_EXAMPLE})"
    if name in _HOST_FILES:
        return f"{shown} is not an IANA time zone (it names {_HOST_FILES[name]}; {_EXAMPLE})"
    head, _, rest = name.partition("/")
    if head in ("posix", "right") and rest:
        what = "with leap seconds" if head == "right" else "of the POSIX tree"
        return f"{shown} is not an IANA time zone (a host copy {what}; use {rest!r})"
    known = _by_casefold().get(name.casefold())
    if known is not None:
        return f"{shown} is not an IANA time zone (names are case-sensitive: {known!r})"
    close = closest(name)
    if close is not None:
        return f"{shown} is not an IANA time zone (did you mean {close!r}?)"
    return f"{shown} is not an IANA time zone ({_EXAMPLE})"


def closest(name: str) -> str | None:
    """The zone a misspelt or partial name most likely means, or None: the one "did you mean" of every door.

    ``America/Sao_Paolo`` → America/Sao_Paulo, ``America/Sao Paulo`` → America/Sao_Paulo, ``Tijuana`` and
    ``Mexico/Tijuana`` → America/Tijuana, ``Asia/Jakata`` → Asia/Jakarta. Nothing for a name longer than any zone.
    """
    key = name.strip().replace(" ", "_").casefold()
    return _closest(key) if 0 < len(key) <= _LONGEST else None


@lru_cache(maxsize=4096)  # an audience misspells the same few zones on many rows
def _closest(key: str) -> str | None:
    whole = _by_casefold().get(key)
    if whole is not None and whole not in _NOT_PLACES:
        return whole
    city = key.rpartition("/")[2]
    if city in _by_city():
        return _by_city()[city]
    for word, known in ((key, _places()), (city, _by_city())):
        close = difflib.get_close_matches(word, known, n=1, cutoff=_CUTOFF)
        if close:
            return known[close[0]]
    return None


def is_iana_zone(name: object) -> bool:
    """True when ``name`` is a zone of the installed tzdata release (not Factory)."""
    return reason(name) is None


@cache  # a name's answer never changes; a wrong name raises, and raising is not kept
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of an IANA name, read from the tzdata package; ValueError naming the reason otherwise."""
    why = reason(name)
    if why is not None:
        raise ValueError(why)
    return _load(name)


@cache
def _load(name: str) -> ZoneInfo:
    path = files("tzdata") / "zoneinfo"
    for part in name.split("/"):
        path = path / part
    with path.open("rb") as f:
        return ZoneInfo.from_file(f, key=name)


@cache
def every_zone() -> tuple[ZoneInfo, ...]:
    """Every zone a recipient may be in (tzdata's list, Factory left out), for questions about all of them: is a
    wave past everywhere?"""
    return tuple(zone(name) for name in sorted(_names()) if is_iana_zone(name))
