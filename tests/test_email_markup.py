"""What a recipient sees: the shipped campaign's email, one per locale × stage, rendered through the real Renderer
and opened in headless Chromium (tests/browser.py). It never scrolls sideways at 375 or 600 CSS pixels; every
visible text is at least 4.5:1 against what is behind it (3:1 when large), in light and in dark mode; a hidden
preheader with the summary comes before anything visible; each call to action is a table cell Outlook draws; there
is exactly one h1. Then email.mjml's own rules: what MRML would get wrong is a RenderError naming file and locale,
and a folder that still has only an email.html is sent as before."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.campaign import Campaign, load_campaign, zone
from notifier.render import NAME, REFUND, Personal, Renderer, RenderError
from notifier.review import Rendered, render_sample, review, samples
from tests.conftest import CAMPAIGN_FILE, ROOT

LOCALES = ("id", "pt-BR", "es-MX", "en")
STAGES = ("announcement", "reminder", "last_day")
KEYS = [(locale, stage) for locale in LOCALES for stage in STAGES]
HOSTILE_NAME = "<script>x</script> & Zoë"

# Each visible text against the colour behind it (the nearest ancestor's background, composited over the canvas),
# as WCAG 2 computes contrast; large text is 24px, or 18.66px bold.
CONTRAST = """() => {
  const rgba = s => { const m = s.match(/rgba?\\(([^)]*)\\)/); if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, under) => { const a = top[3] + under[3] * (1 - top[3]);
    return [0, 1, 2].map(i => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / a).concat([a]); };
  const dark = matchMedia('(prefers-color-scheme: dark)').matches
    && getComputedStyle(document.documentElement).colorScheme.includes('dark');
  const canvas = dark ? [18, 18, 18, 1] : [255, 255, 255, 1];
  const behind = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    return layers.reverse().reduce((under, top) => over(top, under), canvas); };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const seen = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement, text = n.textContent.trim();
    if (!text || !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const range = document.createRange(); range.selectNodeContents(n);
    const box = range.getBoundingClientRect(); if (box.width < 1 || box.height < 1) continue;
    const s = getComputedStyle(el), bg = behind(el), fg = over(rgba(s.color), bg);
    const size = parseFloat(s.fontSize), large = size >= 24 || (size >= 18.66 && parseInt(s.fontWeight) >= 700);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    seen.push({text: text.slice(0, 40), color: s.color, background: `rgb(${bg.slice(0, 3).map(Math.round)})`,
               ratio: Math.round((hi + 0.05) / (lo + 0.05) * 100) / 100, need: large ? 3 : 4.5});
  }
  return seen;
}"""
# The first text of the document, whether it shows, and whether it comes before the h1.
FIRST_TEXT = """() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.textContent.trim()) continue;
    const el = n.parentElement, h1 = document.querySelector('h1');
    return {text: el.textContent, shown: el.checkVisibility({opacityProperty: true, visibilityProperty: true})
              && el.getBoundingClientRect().height > 0,
            before_h1: !!h1 && !!(el.compareDocumentPosition(h1) & Node.DOCUMENT_POSITION_FOLLOWING)};
  }
  return null;
}"""
# Every link but the help page's: the calls to action, each with the cell around it.
BUTTONS = """help => [...document.querySelectorAll('a')].filter(a => a.getAttribute('href') !== help).map(a => {
  const td = a.parentElement, table = td.closest('table');
  return {href: a.getAttribute('href'), text: a.textContent.trim(), cell: td.tagName,
          bgcolor: td.getAttribute('bgcolor'), background: getComputedStyle(td).backgroundColor, in_table: !!table};
})"""
STICKING_OUT = """width => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > width + 0.5).slice(-4)
  .map(e => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


@pytest.fixture(scope="module")
def emails(campaign: Campaign) -> dict[tuple[str, str], Rendered]:
    """One email per locale × stage, as the review's sample reader of that locale gets it, named HOSTILE_NAME."""
    renderer = Renderer(ROOT / "templates", ROOT / "locales")
    found: dict[tuple[str, str], Rendered] = {}
    for sample in samples(campaign):
        personal = dataclasses.replace(sample.personal(), name=HOSTILE_NAME)
        r = render_sample(renderer, campaign, sample, personal)
        found.setdefault((sample.locale, r.variant.stage), r)
    assert set(found) == set(KEYS)
    return found


@pytest.fixture(scope="module")
def screen(browser: Any) -> Iterator[Callable[[int, str], Any]]:
    """A page at a width and colour scheme, opened once for the module and reused for every email."""
    opened: dict[tuple[int, str], tuple[Any, Any]] = {}

    def at(width: int, scheme: str = "light") -> Any:
        if (width, scheme) not in opened:
            context = browser.new_context(viewport={"width": width, "height": 800}, color_scheme=scheme)
            page = context.new_page()
            page.set_default_timeout(15_000)
            opened[(width, scheme)] = (context, page)
        return opened[(width, scheme)][1]

    yield at
    for context, _ in opened.values():
        context.close()


def show(page: Any, r: Rendered) -> Any:
    page.set_content(r.email.html, wait_until="load")
    return page


def ids(key: tuple[str, str]) -> str:
    return "-".join(key)


@pytest.mark.parametrize("width", [375, 600])
@pytest.mark.parametrize("key", KEYS, ids=ids)
def test_no_email_scrolls_sideways_on_a_phone_or_at_600px(screen: Callable[[int, str], Any],
                                                         emails: dict[tuple[str, str], Rendered],
                                                         key: tuple[str, str], width: int) -> None:
    page = show(screen(width, "light"), emails[key])
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.evaluate(STICKING_OUT, width)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("key", KEYS, ids=ids)
def test_every_visible_text_has_enough_contrast(screen: Callable[[int, str], Any],
                                                emails: dict[tuple[str, str], Rendered],
                                                key: tuple[str, str], scheme: str) -> None:
    texts = show(screen(600, scheme), emails[key]).evaluate(CONTRAST)
    assert len(texts) >= 8  # the greeting, the copy, each deadline, its button, the help line and the footer
    assert [t for t in texts if t["ratio"] < t["need"]] == []


@pytest.mark.parametrize("key", KEYS, ids=ids)
def test_a_hidden_preheader_with_the_summary_comes_before_the_content(screen: Callable[[int, str], Any],
                                                                      emails: dict[tuple[str, str], Rendered],
                                                                      key: tuple[str, str]) -> None:
    r = emails[key]
    first = show(screen(600, "light"), r).evaluate(FIRST_TEXT)
    assert first is not None and not first["shown"] and first["before_h1"], first
    summary = " ".join(re.sub("[\u034f\u200c\u00a0]", " ", first["text"]).split())
    assert summary == r.push.body  # the push's summary, not "TikTok Music Hi …"


@pytest.mark.parametrize("key", KEYS, ids=ids)
def test_each_call_to_action_is_a_coloured_table_cell_and_there_is_one_h1(screen: Callable[[int, str], Any],
                                                                          emails: dict[tuple[str, str], Rendered],
                                                                          campaign: Campaign,
                                                                          key: tuple[str, str]) -> None:
    r = emails[key]
    page = show(screen(600, "light"), r)
    buttons = page.evaluate(BUTTONS, campaign.links["help"])
    assert len(buttons) == len({i.deadline for i in r.sample.items})  # one per deadline the email carries
    for button in buttons:
        assert button.get("cell") == "TD" and button["in_table"] and button["text"], button
        assert button["bgcolor"] and button["background"] not in ("rgba(0, 0, 0, 0)", "transparent"), button
    assert page.evaluate("[...document.querySelectorAll('h1')].map(h => h.innerText.trim())") == [r.push.title]
    assert page.evaluate("document.documentElement.lang") == key[0]


def test_the_name_is_escaped_once_and_nothing_is_loaded_from_the_network(screen: Callable[[int, str], Any],
                                                                         emails: dict[tuple[str, str], Rendered]
                                                                         ) -> None:
    page = screen(375, "light")
    requests: list[str] = []

    def record(request: Any) -> None:
        requests.append(request.url)

    page.on("request", record)
    for r in emails.values():
        html = r.email.html
        assert "&lt;script&gt;x&lt;/script&gt; &amp; Zoë" in html and "<script" not in html
        assert NAME not in html and REFUND not in html
        assert not re.search(r"<link\b|@import|fonts\.googleapis", html)
        show(page, r)
        assert HOSTILE_NAME in page.evaluate("document.body.innerText")
        assert page.evaluate("document.scripts.length") == 0
    page.remove_listener("request", record)
    assert [u for u in requests if not u.startswith(("about:", "data:"))] == []


def test_the_html_holds_in_outlook_and_keeps_its_style_block(emails: dict[tuple[str, str], Rendered]) -> None:
    for key, r in emails.items():
        html = r.email.html
        assert re.search(r'<!--\[if mso \| IE\]><table[^>]*width="600"', html), key  # Outlook's fixed-width frame
        assert "mso-padding-alt" in html, key  # the button's padding where Outlook ignores the link's
        head = html[:html.index("</head>")]
        assert '<meta name="color-scheme" content="light dark"' in head, key
        assert '<meta name="supported-color-schemes" content="light dark"' in head, key
        styles = "".join(re.findall(r"<style[^>]*>(.*?)</style>", head, re.DOTALL))
        assert "max-width: 479px" in styles and "prefers-color-scheme: dark" in styles, key
        assert len(html.encode()) < 30_000, key  # far below Gmail's clipping at 102 KB


# --- email.mjml's rules ---------------------------------------------------------------------------------------


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates folder that a test may break."""
    shutil.copytree(ROOT / "templates" / "tiktok-music-shutdown", tmp_path / "tiktok-music-shutdown")
    return tmp_path


def _first_email(templates: Path, campaign: Campaign, locale: str = "pt-BR") -> str:
    renderer = Renderer(templates, ROOT / "locales")
    sample = next(s for s in samples(campaign) if s.locale == locale)
    return render_sample(renderer, campaign, sample, Personal("Ana")).email.html


def _edit(templates: Path, old: str, new: str) -> None:
    path = templates / "tiktok-music-shutdown" / "email.mjml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("</mj-section>", "", r"MJML does not compile: unexpected end of stream"),
    ("</mj-body>", "</mj-body><mj-text>x</mj-text>",
     r"MJML does not compile: line \d+ of the rendered MJML, '<mj-text': unexpected element in root template"),
    ("<mj-button href", "<mj-buton href", r"MJML has no element <mj-buton>"),
    ("<mj-preview>", '<mj-preview colour="red">',
     r"MJML unexpected attribute: line 4 of the rendered MJML, 'colour=\"red\"'"),
    ("<mj-style>", '<mj-style inline="inline">',
     r"line \d+ of the rendered MJML, '<mj-style inline=': <mj-style inline> is not supported"),
])
def test_what_mrml_would_get_wrong_is_an_error_naming_file_and_locale(templates: Path, campaign: Campaign, old: str,
                                                                       new: str, message: str) -> None:
    _edit(templates, old, new)
    with pytest.raises(RenderError, match=r"campaign tiktok-music-shutdown: template "
                                          r"tiktok-music-shutdown/email.mjml \(pt-BR\): " + message):
        _first_email(templates, campaign)


def test_no_font_is_loaded_from_the_network(templates: Path, campaign: Campaign) -> None:
    _edit(templates, '<mj-all font-family="', '<mj-all font-family="Roboto, ')  # MRML links Google's by default
    assert not re.search(r"<link\b|@import", _first_email(templates, campaign))
    _edit(templates, "<mj-attributes>", '<mj-font name="Roboto" href="https://x.example/r.css" /><mj-attributes>')
    with pytest.raises(RenderError, match=r"email.mjml \(pt-BR\): the email loads a remote stylesheet"):
        _first_email(templates, campaign)


def test_review_names_a_broken_email_mjml_once_per_locale(templates: Path, campaign: Campaign) -> None:
    _edit(templates, "</mj-body>", "")
    problems = review(campaign, Renderer(templates, ROOT / "locales"))
    assert {p.message.split(": ")[1] for p in problems} == {
        f"template tiktok-music-shutdown/email.mjml ({locale})" for locale in campaign.locales}
    assert all("MJML does not compile" in p.message for p in problems)


LEGACY = """{%- import "_copy.j2" as copy with context -%}
<!DOCTYPE html><html lang="{{ locale }}"><head><title>{{ subject }}</title>
<style>p { color: #161823; }</style></head>
<body><p>{{ copy.greeting() }}</p></body></html>
"""


def test_a_folder_with_only_an_email_html_is_rendered_and_inlined_as_before(templates: Path,
                                                                            campaign: Campaign) -> None:
    folder = templates / "tiktok-music-shutdown"
    (folder / "email.mjml").unlink()
    (folder / "email.html").write_text(LEGACY, encoding="utf-8")
    html = _first_email(templates, campaign)
    assert "<style" not in html and '<p style="color: #161823;">Olá, Ana,</p>' in html
    assert Renderer(templates, ROOT / "locales").template_names(campaign)[2] == "email.html"
    assert review(campaign, Renderer(templates, ROOT / "locales")) == []


def test_email_mjml_wins_over_a_leftover_email_html(templates: Path, campaign: Campaign) -> None:
    (templates / "tiktok-music-shutdown" / "email.html").write_text(LEGACY, encoding="utf-8")
    assert "mj-column-per-100" in _first_email(templates, campaign)


def test_the_markers_survive_the_compile_and_the_refund_is_filled(campaign: Campaign) -> None:
    renderer = Renderer(ROOT / "templates", ROOT / "locales")
    sample = next(s for s in samples(campaign) if s.locale == "es-MX")
    personal = Personal("Zoë <b>", "$1,234.50")
    variant = renderer.variant(campaign, "es-MX", sample.items, zone(sample.zone), sample.send_at, sample.country,
                               personal)
    assert NAME in variant.html and REFUND in variant.html  # compiled once, with the markers in place
    html = renderer.email(variant, personal).html
    assert "Zoë &lt;b&gt;" in html and "$1,234.50" in html


# --- the studio's email, generated from a marketer's words (notifier.studio.words) ------------------------------


@pytest.fixture(scope="module")
def studio_emails() -> dict[str, Rendered]:
    """The price-change starter's email per stage, in English, named HOSTILE_NAME: what the studio makes."""
    from notifier.studio import starter, store

    bundle = starter.new_bundle(starter.starter_from_json(starter.STARTERS["price-change"]))
    campaign = store.campaign_of(bundle)
    found: dict[str, Rendered] = {}
    with store.unpacked(bundle) as u:
        renderer = Renderer(u.templates_dir, u.locales_dir)
        for sample in samples(campaign):
            if sample.locale == "en":
                personal = dataclasses.replace(sample.personal(), name=HOSTILE_NAME)
                r = render_sample(renderer, campaign, sample, personal)
                found.setdefault(r.variant.stage, r)
    assert {"announcement", "reminder", "last_day"} <= set(found)
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 600])
@pytest.mark.parametrize("stage", STAGES)
def test_a_studio_email_holds_on_a_phone_keeps_its_contrast_and_says_why_it_came(
        screen: Callable[[int, str], Any], studio_emails: dict[str, Rendered], stage: str, width: int,
        scheme: str) -> None:
    r = studio_emails[stage]
    page = show(screen(width, scheme), r)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.evaluate(STICKING_OUT, width)
    texts = page.evaluate(CONTRAST)
    assert [t for t in texts if t["ratio"] < t["need"]] == []
    assert page.evaluate("[...document.querySelectorAll('h1')].map(h => h.innerText.trim())") == [r.push.title]
    assert "because you have an account with Acme Stream" in page.evaluate("document.body.innerText")
    assert HOSTILE_NAME not in r.email.html and "&lt;script&gt;x&lt;/script&gt; &amp; Zoë" in r.email.html
