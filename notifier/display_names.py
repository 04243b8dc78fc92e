"""A person's name as it may appear in a message: in a header, a greeting, a push title.

Names come from audience files that nobody reviews, so before a name reaches a message it is made plain text:
control characters (CR/LF, NUL, C1, line and paragraph separators) become a space, private-use characters (the
renderer's own markers live there), bidi controls and lone surrogates are dropped, and the RFC 2047 encoded-word
introducer ``=?`` is broken with a word joiner, so ``=?utf-8?b?...?=`` is shown as typed instead of being decoded
into other recipients by a mail client. The importer cleans names with this on the way in and the renderer again
on the way out; the header itself is then built by the email library or the provider's SDK, never by hand.
"""

from __future__ import annotations

import re

MAX_NAME = 200  # the ledger's column
# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: each becomes a space.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Removed: private use (the renderer's own markers are U+E000 and U+E001), bidi embeddings, overrides, isolates
# and marks (which reorder what follows), and lone surrogates (not characters: no database stores them).
_INVISIBLE = re.compile("[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
                        "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
ENCODED_WORD_BREAK = "=\u2060?"  # "=?" with a WORD JOINER between: shown the same, never an RFC 2047 encoded word


def plain_name(name: str | None) -> str | None:
    """``name`` made safe to show in any message part; None when nothing printable is left. Idempotent."""
    if not name:
        return None
    if name.isascii() and name.isprintable() and "=?" not in name and "  " not in name and len(name) <= MAX_NAME:
        return name.strip() or None  # the common case, unchanged
    text = _INVISIBLE.sub("", _CONTROLS.sub(" ", name))
    text = " ".join(text.split()).replace("=?", ENCODED_WORD_BREAK)
    return text[:MAX_NAME].rstrip() or None
