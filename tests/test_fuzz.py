"""Fuzzing the doors hostile input comes in by: the campaign loader, the audience importer and the renderer.

Whatever the input, each ends in a valid result or a located error of our own (CampaignError with file and
line, a Rejection with its line, AudienceError), never another exception, and every example in bounded time
(hypothesis' deadline). The examples are few enough for CI; raise ``FUZZ_EXAMPLES`` to search longer.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.audience import read_audience
from notifier.campaign import parse_campaign
from notifier.errors import AudienceError, CampaignError
from notifier.render import NAME, REFUND, Personal, fill
from tests.conftest import CAMPAIGN_FILE

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=3000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SHIPPED = CAMPAIGN_FILE.read_text(encoding="utf-8").splitlines()
HEADER = "id,email,name,locale,timezone,country,push_tokens,joined_at,refund_amount,refund_currency"

# Text that looks like what the parsers care about, mixed with anything at all.
nasty = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["[" * 500, "{" * 300, "9" * 5000, "P99999999999999999999D", "9999-12-31", "0001-01-01",
                     "&a [*a, *a]", "!!python/object:os.system", "\x00", "\ufeff", "=?utf-8?b?YQ==?=", "\r\n",
                     "localtime", "right/Asia/Jakarta", "NaN", "-1", "1e400", "'", '"', "'\"><script>", "\ue000"]),
)


def _campaign_or_located_error(text: str) -> None:
    try:
        parse_campaign(text, source="fuzz.yaml")
    except CampaignError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" and p.message for p in exc.problems)


@FUZZ
@given(st.text(max_size=3000))
def test_any_text_as_a_campaign_file_is_a_campaign_or_located_errors(text: str) -> None:
    _campaign_or_located_error(text)


@FUZZ
@given(st.integers(0, len(SHIPPED) - 1), nasty)
def test_the_shipped_campaign_with_any_value_replaced_is_a_campaign_or_located_errors(line: int, value: str) -> None:
    lines = list(SHIPPED)
    key, sep, _ = lines[line].partition(":")
    lines[line] = f"{key}{sep} {value}" if sep else value
    _campaign_or_located_error("\n".join(lines))


def _audience(data: bytes, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"audience.{fmt}"
        path.write_bytes(data)
        try:
            for entry in read_audience(path, fmt):
                line = getattr(entry, "line", None)
                assert line is None or line >= 1
        except AudienceError as exc:
            assert str(exc)


@FUZZ
@given(st.binary(max_size=4000), st.sampled_from(["csv", "jsonl"]))
def test_any_bytes_as_an_audience_file_are_rows_rejections_or_one_error(data: bytes, fmt: str) -> None:
    _audience(data, fmt)


@FUZZ
@given(st.lists(st.lists(nasty, min_size=10, max_size=10), max_size=8))
def test_any_cells_in_a_well_formed_csv_are_rows_or_rejections(rows: list[list[str]]) -> None:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER.split(","))
    writer.writerows(rows)
    _audience(out.getvalue().encode("utf-8", "surrogatepass"), "csv")


@FUZZ
@given(st.one_of(st.none(), nasty), st.dictionaries(st.sampled_from(["refund_amount", "refund_currency", "x"]),
                                                   st.one_of(nasty, st.integers(), st.floats(), st.booleans())),
       st.sampled_from(["en", "id", "pt-BR", "es-MX"]))
def test_any_name_and_refund_fill_a_message_as_plain_text(name: str | None, attributes: dict[str, object],
                                                          locale: str) -> None:
    personal = Personal.of(name, attributes, locale)
    for html in (False, True):
        text = fill(f"Hi {NAME}! {REFUND}.", personal, html=html)
        assert NAME not in text and REFUND not in text
        assert "\r" not in text and "\n" not in text and "\x00" not in text
        if html:
            assert "<" not in text.replace("&lt;", "")
