"""A hostile or careless campaign file: every value bounded with a located Problem, never a traceback, and nothing
it contains can break out of the message it ends up in."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from notifier.campaign import Campaign, load_campaign, parse_campaign
from notifier.errors import CampaignError, Problem
from notifier.render import Renderer
from notifier.review import render_sample, samples
from tests.conftest import CAMPAIGN_FILE, ROOT
from tests.test_campaign import VALID, with_lines

MAX_FILE_BYTES, MAX_WAVE = 256 * 1024, timedelta(days=400)
TOO_LARGE = "the file is larger than 256 KiB (262,144 bytes), the most it may be"
TOO_DEEP = "lists and mappings nested more than 20 levels deep"


def problems(text: str) -> list[Problem]:
    """The problems of ``text``; pytest.raises lets any other exception (a traceback) fail the test."""
    with pytest.raises(CampaignError) as info:
        parse_campaign(text, source="demo.yaml")
    return info.value.problems


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


# --- numbers ----------------------------------------------------------------------------------------------------


def test_max_per_day_with_five_thousand_digits_is_refused_before_int_sees_it() -> None:
    p = only(with_lines(l9="  max_per_day: " + "9" * 5000))
    assert p == Problem("demo.yaml", 9, "delivery.max_per_day",
                        f"expected a whole number from 1 to 10, got {'9' * 60!r}… (5,000 characters)")


@pytest.mark.parametrize("value", ["11", "99", "²", "١"])  # beyond the bound, and digits int() reads or refuses
def test_max_per_day_is_one_to_ten_in_ascii_digits(value: str) -> None:
    p = only(with_lines(l9=f"  max_per_day: {value}"))
    assert p == Problem("demo.yaml", 9, "delivery.max_per_day", f"expected a whole number from 1 to 10, got {value!r}")


def test_max_per_day_of_ten_is_accepted() -> None:
    assert parse_campaign(with_lines(l9="  max_per_day: 10")).delivery.max_per_day == 10


def test_a_wave_of_twenty_digits_is_refused_without_overflow() -> None:
    p = only(with_lines(l13="    waves: [P99999999999999999999D]"))
    assert p == Problem("demo.yaml", 13, "deadlines[0].waves[0]", "'P99999999999999999999D' is more than P400D "
                        "(400 days) before its deadline, the longest a wave may be")


@pytest.mark.parametrize("wave", ["P401D", "PT9601H", "P58W", "PT34560001S"])
def test_a_wave_longer_than_about_a_year_is_refused(wave: str) -> None:
    p = only(with_lines(l13=f"    waves: [P1D, {wave}]"))
    assert p == Problem("demo.yaml", 13, "deadlines[0].waves[1]",
                        f"{wave!r} is more than P400D (400 days) before its deadline, the longest a wave may be")


def test_the_longest_wave_and_a_wave_on_the_deadline_are_accepted() -> None:
    c = parse_campaign(with_lines(l12='    at: "2024-10-28T00:00"', l13="    waves: [P400D, PT9600H, P0D]"))
    assert [w.delta for w in c.deadline("transfer").waves] == [MAX_WAVE, MAX_WAVE, MAX_WAVE * 0]


def test_a_wave_label_padded_with_zeros_is_refused() -> None:
    wave = "P" + "0" * 30 + "1D"
    p = only(with_lines(l13=f"    waves: [{wave}]"))
    assert p == Problem("demo.yaml", 13, "deadlines[0].waves[0]",
                        f"{wave!r} is longer than 20 characters: write it without leading zeros")


def test_wave_digits_must_be_ascii() -> None:
    p = only(with_lines(l13="    waves: [P٧D]"))
    assert p == Problem("demo.yaml", 13, "deadlines[0].waves[0]",
                        "'P٧D' is not an ISO-8601 duration such as P7D or PT6H")


def test_more_than_twenty_waves_are_refused_before_any_is_read() -> None:
    waves = ", ".join(f"P{n}D" for n in range(1, 26))
    p = only(with_lines(l13=f"    waves: [{waves}]"))
    assert p == Problem("demo.yaml", 13, "deadlines[0].waves", "at most 20 waves per deadline, found 25")


def test_more_than_twenty_deadlines_are_refused() -> None:
    body = "".join(f"  - id: d{i}\n    at: \"2024-10-28T00:00\"\n    waves: [P1D]\n" for i in range(21))
    p = only("\n".join(VALID.splitlines()[:9]) + "\ndeadlines:\n" + body)
    assert p == Problem("demo.yaml", 11, "deadlines", "at most 20 deadlines, found 21")  # where the list starts


def test_more_than_fifty_locales_are_refused_before_babel_reads_them() -> None:
    p = only(with_lines(l3="locales: [" + ", ".join(["en"] * 51) + "]"))
    assert p == Problem("demo.yaml", 3, "locales", "at most 50 locales, found 51")


# --- dates and times --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["9999-12-31", "0001-01-01", "1999-12-31T23:59", "2101-01-01T00:00+14:00"])
def test_a_deadline_outside_2000_to_2100_is_refused(at: str) -> None:
    p = only(with_lines(l12=f'    at: "{at}"'))
    assert p == Problem("demo.yaml", 12, "deadlines[0].at",
                        f"{at!r} is not between 2000-01-01 and 2100-12-31, the dates a deadline may have")


def test_the_first_and_last_days_a_deadline_may_have_are_accepted() -> None:
    c = parse_campaign(with_lines(l12='    at: "2000-01-01T00:00+14:00"', l15='    at: "2100-12-31T23:59-12:00"'))
    assert [d.at.year for d in c.deadlines] == [2000, 2100]


@pytest.mark.parametrize("value", ["24:00", "23:60", "١٠:٠٠", "10:00:00", "9999999999:00"])
def test_a_local_time_must_be_a_valid_hh_mm(value: str) -> None:
    p = only(with_lines(l7=f'  local_time: "{value}"'))
    assert p == Problem("demo.yaml", 7, "delivery.local_time", f"{value!r} is not a time of day as HH:MM")


# --- the file as a whole ----------------------------------------------------------------------------------------


def test_ten_thousand_nested_brackets_are_refused_at_once_with_their_line() -> None:
    text = VALID + "description: " + "[" * 10_000 + "\n"
    start = time.perf_counter()
    p = only(text)
    elapsed = time.perf_counter() - start
    assert p == Problem("demo.yaml", 17, None, TOO_DEEP)
    assert elapsed < 2, f"took {elapsed:.1f} s"  # a safety bound, not a benchmark: it took 10 s of CPU before


@pytest.mark.parametrize(
    ("nested", "line"),
    [
        ("description: " + "[" * 10_000 + "]" * 10_000 + "\n", 17),  # closed: PyYAML's RecursionError
        ("description: " + "{a: " * 10_000 + "\n", 17),
        ("description:\n" + "- " * 10_000 + "x\n", 18),  # block sequences, one inside the other
        ("description:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(30)), 37),  # the 21st level's line
    ],
    ids=["closed-brackets", "flow-mappings", "block-sequences", "indented-mappings"],
)
def test_nesting_deeper_than_twenty_levels_is_refused_where_it_goes_too_deep(nested: str, line: int) -> None:
    assert only(VALID + nested) == Problem("demo.yaml", line, None, TOO_DEEP)


def test_twenty_levels_of_nesting_are_accepted() -> None:
    # The top mapping is level 1 and description's value level 2: 19 more lists end at level 20.
    c = parse_campaign(VALID + "description: " + "[" * 19 + "x" + "]" * 19 + "\n")
    assert c.id == "demo"


def test_a_file_larger_than_the_limit_is_refused_before_it_is_parsed() -> None:
    text = VALID + "description: " + "[" * MAX_FILE_BYTES + "\n"  # would be too deep, but is never parsed
    assert only(text) == Problem("demo.yaml", None, None, TOO_LARGE)


def test_the_limit_counts_bytes_not_characters() -> None:
    text = VALID + "description: " + "é" * (MAX_FILE_BYTES // 2) + "\n"
    assert len(text) < MAX_FILE_BYTES < len(text.encode())
    assert only(text) == Problem("demo.yaml", None, None, TOO_LARGE)


def test_a_file_larger_than_the_limit_is_not_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(VALID + "description: " + "x" * (4 * MAX_FILE_BYTES) + "\n", encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_campaign(big)
    assert info.value.problems == [Problem(str(big), None, None, TOO_LARGE)]


def test_an_alias_bomb_is_still_refused_at_its_first_anchor() -> None:
    bomb = "".join(f'l{i}: &l{i} [{", ".join([f"*l{i - 1}"] * 9)}]\n' for i in range(1, 10))
    p = only(VALID + "description: &l0 [lol]\n" + bomb)
    assert p == Problem("demo.yaml", 17, None,
                        "YAML anchors and aliases (&, *) are not allowed in campaign files; write the values out")


def test_a_character_yaml_forbids_is_located_on_its_line() -> None:
    p = only(with_lines(l2="name: Demo\x00campaign"))
    assert p == Problem("demo.yaml", 2, None,
                        "YAML error: unacceptable character #x0000: special characters are not allowed")


# --- names and labels -------------------------------------------------------------------------------------------


def test_a_name_longer_than_two_hundred_characters_is_refused() -> None:
    p = only(with_lines(l2="name: " + "n" * 201))
    assert p == Problem("demo.yaml", 2, "name", f"{'n' * 60!r}… (201 characters) is longer than 200 characters")


def test_a_label_with_a_line_break_is_refused() -> None:
    p = only(with_lines(l13='    waves: [P7D, P1D]\n    label: "Transfer\\nnow"'))
    assert p == Problem("demo.yaml", 14, "deadlines[0].label",
                        "'Transfer\\nnow' contains a line break or control character")


# --- links ------------------------------------------------------------------------------------------------------

HOSTILE_LINK = 'https://x.example/"><script>alert(1)</script>'
BACKSLASH, RLO = "\\", "\u202e"
REFUSED = ("a link may not contain quotes, angle brackets, backslashes, backticks, spaces, control or non-ASCII "
           "characters (percent-encode them, e.g. %20)")


def test_a_link_that_would_break_out_of_its_attribute_is_refused() -> None:
    p = only(VALID + f"links:\n  transfer: '{HOSTILE_LINK}'\n")
    assert p == Problem("demo.yaml", 18, "links.transfer", f"{HOSTILE_LINK!r} contains '\"': {REFUSED}")


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("javascript:alert(1)", "'javascript:alert(1)' is not an https:// URL"),
        ("http://example.com/help", "'http://example.com/help' is not an https:// URL"),
        ("https:example.com", "'https:example.com' is not an https:// URL"),
        ("https:///path", "'https:///path': '' is not a host name such as music.tiktok.com"),
        ("https://localhost/", "'https://localhost/': 'localhost' is not a host name such as music.tiktok.com"),
        ("https://x..example/", "'https://x..example/': 'x..example' is not a host name such as music.tiktok.com"),
        ("https://music.tiktok.com@evil.example/",
         "'https://music.tiktok.com@evil.example/': a link may not carry a user name or password (user@host)"),
        ("https://x.example:99999/", "'https://x.example:99999/' is not a URL: Port out of range 0-65535"),
        ("https://x.example/a b", f"'https://x.example/a b' contains ' ': {REFUSED}"),
        ("https://x.example/a\\b", f"{'https://x.example/a' + BACKSLASH + 'b'!r} contains {BACKSLASH!r}: {REFUSED}"),
        ("https://x.example/`", f"'https://x.example/`' contains '`': {REFUSED}"),
        ("https://x.example/" + RLO, f"{'https://x.example/' + RLO!r} contains {RLO!r}: {REFUSED}"),  # bidi override
        ("https://bücher.example/", f"'https://bücher.example/' contains 'ü': {REFUSED}"),
        ("https://x.example/" + "a" * 2000,
         f"{'https://x.example/' + 'a' * 42!r}… (2,018 characters) is longer than 2,000 characters"),
    ],
)
def test_a_link_must_be_a_plain_https_url_to_a_named_host(link: str, message: str) -> None:
    quoted = link.replace("'", "''")  # YAML single quotes: only a quote is escaped
    p = only(VALID + f"links:\n  help: '{quoted}'\n")
    assert p == Problem("demo.yaml", 18, "links.help", message)


def test_real_links_are_kept_exactly() -> None:
    links = {"transfer": "https://music.tiktok.com/transfer?utm_source=email&utm_medium=service#top",
             "refund": "https://xn--bcher-kva.example:8443/refund/%E2%82%AC", "help": "HTTPS://support.tiktok.com"}
    c = parse_campaign(VALID + "links:\n" + "".join(f"  {k}: '{v}'\n" for k, v in links.items()))
    assert c.links == links


# --- what reaches the message -----------------------------------------------------------------------------------

LINKS = {"transfer": HOSTILE_LINK, "refund": "https://x.example/refund?a=1&b=2&amp;c='x'",
         "help": "javascript:alert(1)//<img src=x onerror=alert(1)>"}
HOSTILE_NAME = "<script>alert('name')</script> & {{ 7*7 }}"
TAGS = {"html", "head", "meta", "title", "style", "body", "table", "tbody", "tr", "td", "p", "div", "h1", "h2", "a",
        "strong"}


class _Elements(HTMLParser):
    """Every start tag of a document with its attributes, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def hostile() -> Campaign:
    """The shipped campaign with values its validation refuses: what the templates alone must survive."""
    shipped = load_campaign(CAMPAIGN_FILE)
    # Each deadline's link: the name under links it names (link: transfer), resolved to the hostile URL.
    deadlines = tuple(dataclasses.replace(d, link=LINKS["transfer" if d.id == "playlist-transfer" else "refund"])
                      for d in shipped.deadlines)
    return dataclasses.replace(shipped, name=HOSTILE_NAME, links=LINKS, deadlines=deadlines)


def test_every_html_email_escapes_campaign_values_exactly_once(hostile: Campaign) -> None:
    renderer = Renderer(ROOT / "templates", ROOT / "locales")
    rendered = 0
    for sample in samples(hostile):
        r = render_sample(renderer, hostile, sample)
        page = _Elements()
        page.feed(r.email.html)
        page.close()
        where = f"{sample.locale} {sample.label}"
        assert {tag for tag, _ in page.tags} <= TAGS, where
        assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")], where
        deadlines = dict.fromkeys(i.deadline for i in sample.items)
        wanted = [LINKS["transfer"] if d == "playlist-transfer" else LINKS["refund"] for d in deadlines]
        assert [attrs["href"] for tag, attrs in page.tags if tag == "a"] == [*wanted, LINKS["help"]], where
        assert LINKS["help"] in "".join(page.text), where  # the help link is printed as text too, as written
        for link in (*wanted, LINKS["help"]):  # the text part carries the links as written, unescaped
            assert link in r.email.text, where
        rendered += 1
    assert rendered == 4 * 8  # every locale × send (with each half of a merged send)
