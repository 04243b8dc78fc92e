"""IANA time zones, named and loaded from the ``tzdata`` package only, so every host gives the same answer.

``zoneinfo.ZoneInfo(key)`` looks in the host's ``/usr/share/zoneinfo`` first, where a name that is no IANA zone
may still be a file (``localtime``, ``posixrules``, ``right/Asia/Jakarta``, an absolute path, and on a
case-insensitive disk ``asia/jakarta``), and the data may be an older release than the one we install. Here a
name is accepted only when it is listed in ``tzdata``'s own ``zones`` file (the canonical names and their
backward-compatible links such as ``Asia/Calcutta``), except ``Factory``, tzdata's placeholder for "no zone
configured"; the rules are read from that same package with ``ZoneInfo.from_file``.

One ZoneInfo per name (cached), so datetimes of one zone share one tzinfo. Zones made by ``from_file`` cannot be
pickled; notifier passes zone names between processes, never ZoneInfo objects.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo

__all__ = ["is_iana_zone", "reason", "zone"]

_EXAMPLE = "for example Asia/Jakarta"
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
    return f"{shown} is not an IANA time zone ({_EXAMPLE})"


def is_iana_zone(name: object) -> bool:
    """True when ``name`` is a zone of the installed tzdata release (not Factory)."""
    return reason(name) is None


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
