"""The HTML part of an email: ``email.mjml`` compiled by MRML, or a legacy ``email.html`` with its CSS inlined.

MJML (compiled by MRML, in Rust: no Node at run time) writes the email clients' hard parts for us: fluid columns
that stack on phones, table-based buttons that Outlook for Windows draws, its conditional comments, and the
inline styles every client needs, while the ``<style>`` block (media queries, dark mode) stays in the head.
A campaign folder written before MJML (``email.html`` and no ``email.mjml``) is sent as before: rendered, then
its ``<style>`` block inlined by css-inline.

MRML is lenient where a typo should stop a campaign before it sends, so these are refused, with the place:
markup it cannot parse, an attribute it does not know (its warnings), an element it does not know (MRML copies
``<mj-buton>`` into the HTML as it is), ``<mj-style inline="inline">`` (this build drops such rules) and a remote
stylesheet (``mj-font``: clients block it, and loading it tells a third party who opened the email).
"""

from __future__ import annotations

import re
from pathlib import Path

import css_inline
import mrml

from notifier.errors import RenderError

MJML, LEGACY_HTML = "email.mjml", "email.html"
MARKUP_NAMES = (MJML, LEGACY_HTML)

# No font map: MRML would otherwise add a Google Fonts <link> for a font-family it knows (Ubuntu, Roboto, ...).
_RENDER = mrml.RenderOptions(disable_comments=True, fonts={})
# No mj-include: templates include each other through Jinja2, inside its sandbox; MRML reads no file.
_PARSER = mrml.ParserOptions(include_loader=mrml.noop_loader())
_POSITION = re.compile(r" at position (\d+):(\d+)")
_INLINE_STYLE = re.compile(r"<mj-style\b[^>]*\binline\s*=", re.IGNORECASE)
_UNKNOWN = re.compile(r"</?(mj-[\w-]+)", re.IGNORECASE)
_REMOTE = re.compile(r"<link\b|@import\b", re.IGNORECASE)


def markup_file(folder: Path) -> str:
    """The file a campaign's HTML part is written in: ``email.mjml``, or ``email.html`` in a folder without one."""
    if not (folder / MJML).is_file() and (folder / LEGACY_HTML).is_file():
        return LEGACY_HTML
    return MJML


def to_html(name: str, source: str, where: str) -> str:
    """A rendered ``email.mjml`` or ``email.html`` as the HTML that is sent; ``where`` names file and locale."""
    return compile_mjml(source, where) if name == MJML else inline_css(source, where)


def compile_mjml(source: str, where: str) -> str:
    """MJML to HTML with MRML; a RenderError, located in the rendered MJML, for anything it would get wrong."""
    inline = _INLINE_STYLE.search(source)
    if inline:
        raise RenderError(f"{where}: {_at(source, inline.start(), inline.end())}: <mj-style inline> is not "
                          "supported by MRML (its rules would be dropped): put what must be inline in mj-attributes "
                          "or mj-class, and keep mj-style for media queries")
    try:
        out = mrml.to_html(source, parser_options=_PARSER, render_options=_RENDER)
    except (OSError, ValueError) as exc:
        message = str(exc)
        found = _POSITION.search(message)
        if found:
            message = f"{_at(source, int(found[1]), int(found[2]), utf8=True)}: {message[:found.start()]}"
        raise RenderError(f"{where}: MJML does not compile: {message}") from exc
    if out.warnings:
        w = out.warnings[0]
        raise RenderError(f"{where}: MJML {w.kind.replace('-', ' ')}: {_at(source, w.start, w.end, utf8=True)}")
    unknown = _UNKNOWN.search(out.content)
    if unknown:
        raise RenderError(f"{where}: MJML has no element <{unknown[1]}> (see the MJML documentation's components)")
    if _REMOTE.search(out.content):
        raise RenderError(f"{where}: the email loads a remote stylesheet (mj-font?): name installed fonts in "
                          "font-family instead")
    return out.content


def inline_css(source: str, where: str) -> str:
    """A legacy ``email.html``: its ``<style>`` block inlined into each element, as it has always been sent."""
    try:
        return css_inline.inline(source)
    except ValueError as exc:
        raise RenderError(f"{where}: CSS cannot be inlined: {exc}") from exc


def _at(source: str, start: int, end: int, *, utf8: bool = False) -> str:
    """Where a span of the rendered markup is: its line and what it says (MRML counts bytes of UTF-8)."""
    if utf8:
        data = source.encode()
        before, span = data[:start].decode(errors="replace"), data[start:end].decode(errors="replace")
    else:
        before, span = source[:start], source[start:end]
    line = before.count("\n") + 1
    text = " ".join(span.split())
    return f"line {line} of the rendered MJML, {text[:60]!r}" if text else f"line {line} of the rendered MJML"
