"""A person's name as it may appear in a message: in a header, a greeting, a push title.

Names come from audience files that nobody reviews, so before a name reaches a message it is made plain text:
control characters (CR/LF, NUL, C1, line and paragraph separators) become a space, private-use characters (the
renderer's own markers live there) are dropped, and the RFC 2047 encoded-word introducer ``=?`` is broken with
a word joiner, so ``=?utf-8?b?...?=`` is shown as typed instead of being decoded into other recipients by a
mail client. The header itself is then built by the email library or the provider's SDK, never by hand.
"""

from __future__ import annotations

import re

MAX_NAME = 200  # the ledger's column
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")
_ENCODED_WORD = "=?"
_INERT = "=\u2060?"  # U+2060 WORD JOINER: invisible, and no encoded word starts with it


def plain_name(name: str | None) -> str | None:
    """``name`` made safe to show in any message part; None when nothing printable is left."""
    if not name:
        return None
    text = _PRIVATE_USE.sub("", _CONTROLS.sub(" ", name)).replace(_ENCODED_WORD, _INERT)
    text = " ".join(text.split())[:MAX_NAME].strip()
    return text or None
