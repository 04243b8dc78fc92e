"""Campaign files: the shipped one loads, and every mistake is reported with its file, line and field."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from notifier.campaign import Campaign, load_campaign, load_campaigns, parse_campaign, parse_duration
from notifier.errors import CampaignError, Problem, UserError

CAMPAIGN_FILE = Path(__file__).resolve().parent.parent / "campaigns" / "tiktok-music-shutdown.yaml"

# A valid campaign; tests change single lines (numbered on the right) and check the line reported.
VALID = """\
id: demo
name: Demo campaign
locales: [en, pt-BR]
default_locale: en
channels: [email, push]
delivery:
  local_time: "10:00"
  window: ["08:00", "21:00"]
  max_per_day: 1
deadlines:
  - id: transfer
    at: "2024-10-28T00:00"
    waves: [P7D, P1D]
  - id: refund
    at: "2024-11-28T00:00"
    waves: [P30D, P1D]
"""
#  1 id               6 delivery          11   - id: transfer     16     waves (refund)
#  2 name             7   local_time      12     at
#  3 locales          8   window          13     waves (transfer)
#  4 default_locale   9   max_per_day     14   - id: refund
#  5 channels        10 deadlines         15     at


def with_lines(**replacements: str) -> str:
    """VALID with line N replaced, e.g. with_lines(l7='  local_time: "07:00"'); a value may span lines."""
    lines = VALID.splitlines()
    for key, text in replacements.items():
        lines[int(key[1:]) - 1] = text
    return "\n".join(lines) + "\n"


def problems(text: str, source: str = "demo.yaml") -> list[Problem]:
    """The problems parse_campaign reports for ``text``; fails the test if the text is accepted."""
    with pytest.raises(CampaignError) as info:
        parse_campaign(text, source=source)
    assert info.value.problems, "a CampaignError must carry at least one problem"
    return info.value.problems


def where(found: list[Problem]) -> list[tuple[int | None, str | None]]:
    return [(p.line, p.field) for p in found]


def only_problem(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


# --- the shipped file and valid input ----------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Campaign:
    return load_campaign(CAMPAIGN_FILE)


def test_shipped_campaign_loads_with_its_ids_and_names(shipped: Campaign) -> None:
    assert shipped.id == "tiktok-music-shutdown"
    assert shipped.name == "TikTok Music is closing"
    assert shipped.category == "service"
    assert not shipped.honours_opt_outs
    assert shipped.templates == "tiktok-music-shutdown"
    assert shipped.source == str(CAMPAIGN_FILE)


def test_shipped_campaign_locales_are_normalized(shipped: Campaign) -> None:
    assert shipped.locales == ("id", "pt-BR", "es-MX", "en")
    assert shipped.default_locale == "en"


def test_shipped_campaign_channels_audience_and_links(shipped: Campaign) -> None:
    assert shipped.channels == ("email", "push")
    assert shipped.countries == ("ID", "BR", "AU", "SG", "MX")
    assert shipped.links == {
        "transfer": "https://music.tiktok.com/transfer",
        "refund": "https://music.tiktok.com/refund",
        "help": "https://support.tiktok.com/music-closing",
    }


def test_shipped_campaign_delivery_rules(shipped: Campaign) -> None:
    assert shipped.delivery.local_time == time(10, 0)
    assert shipped.delivery.window == (time(8, 0), time(21, 0))
    assert shipped.delivery.max_per_day == 1


def test_shipped_campaign_deadlines_are_wall_time_with_waves_longest_first(shipped: Campaign) -> None:
    assert [d.id for d in shipped.deadlines] == ["playlist-transfer", "refund"]
    transfer, refund = shipped.deadlines
    assert transfer.at == datetime(2024, 10, 28, 0, 0)
    assert refund.at == datetime(2024, 11, 28, 0, 0)
    assert transfer.is_wall_time and refund.is_wall_time
    assert [str(w) for w in transfer.waves] == ["P30D", "P7D", "P1D"]
    assert [str(w) for w in refund.waves] == ["P61D", "P30D", "P7D", "P1D"]
    assert [w.delta for w in refund.waves] == [timedelta(days=n) for n in (61, 30, 7, 1)]
    assert all(w.whole_days for w in (*transfer.waves, *refund.waves))
    assert (transfer.skip_if, refund.skip_if) == ("playlist_transferred", "refund_requested")
    assert transfer.label == "Playlist transfer"
    assert shipped.deadline("refund") is refund
    with pytest.raises(KeyError):
        shipped.deadline("nope")


def test_shipped_campaign_loads_through_load_campaigns_from_its_folder() -> None:
    [campaign] = load_campaigns([CAMPAIGN_FILE.parent])
    assert campaign.id == "tiktok-music-shutdown"


def test_valid_template_parses() -> None:
    c = parse_campaign(VALID)
    assert c.id == "demo"
    assert c.templates == "demo"  # defaults to the id
    assert c.source == "<memory>"


def test_locale_tags_are_normalized_to_language_dash_territory() -> None:
    c = parse_campaign(with_lines(l3="locales: [pt_br, es-mx, EN]", l4="default_locale: pt_BR"))
    assert c.locales == ("pt-BR", "es-MX", "en")
    assert c.default_locale == "pt-BR"


def test_waves_are_sorted_longest_first_whatever_the_file_order() -> None:
    c = parse_campaign(with_lines(l13="    waves: [PT6H, P1D, p30d, P1W, P1DT6H]"))
    assert [str(w) for w in c.deadline("transfer").waves] == ["P30D", "P1W", "P1DT6H", "P1D", "PT6H"]


def test_whole_day_waves_are_days_and_weeks_and_anything_with_a_time_part_is_exact() -> None:
    c = parse_campaign(with_lines(l13="    waves: [P2W, P2D, PT24H, P1DT6H, PT0S, PT30M]"))
    kinds = {str(w): w.whole_days for w in c.deadline("transfer").waves}
    assert kinds == {"P2W": True, "P2D": True, "PT24H": False, "P1DT6H": False, "PT0S": False, "PT30M": False}


def test_absolute_deadline_keeps_its_offset_and_deadlines_keep_the_file_order() -> None:
    c = parse_campaign(with_lines(l12='    at: "2024-12-01T00:00+07:00"'))
    assert [d.id for d in c.deadlines] == ["transfer", "refund"]  # transfer is later, but listed first
    transfer = c.deadline("transfer")
    assert not transfer.is_wall_time
    assert transfer.instant_in(UTC) == datetime(2024, 11, 30, 17, 0, tzinfo=UTC)


def test_delivery_defaults_when_the_block_is_absent() -> None:
    text = "\n".join(line for i, line in enumerate(VALID.splitlines(), 1) if not 6 <= i <= 9) + "\n"
    c = parse_campaign(text)
    assert (c.delivery.local_time, c.delivery.window, c.delivery.max_per_day) == (time(10), (time(8), time(21)), 1)


def test_marketing_campaigns_honour_opt_outs() -> None:
    c = parse_campaign("category: marketing\n" + VALID)
    assert c.category == "marketing" and c.honours_opt_outs


@pytest.mark.parametrize(
    ("text", "expected"),
    [("P7D", timedelta(days=7)), ("P1W", timedelta(weeks=1)), ("PT6H", timedelta(hours=6)),
     ("PT30M", timedelta(minutes=30)), ("P1DT6H", timedelta(days=1, hours=6)), ("PT0S", timedelta(0)),
     ("p2dt1h2m3s", timedelta(days=2, hours=1, minutes=2, seconds=3))],
)
def test_durations_of_weeks_days_hours_minutes_seconds_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "P1DT", "7D", "P7X", "P-1D", "P1.5D", "", "P1M", "P1Y", "P1Y2M3D"])
def test_malformed_or_calendar_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- YAML-level problems -----------------------------------------------------------------------------


def test_yaml_syntax_error_reports_its_line() -> None:
    p = only_problem(with_lines(l3="locales: [en, pt-BR"))  # the parser notices at the next line's ':'
    assert (p.file, p.line, p.field) == ("demo.yaml", 4, None)
    assert p.message.startswith("YAML syntax error")


def test_yaml_bad_indentation_reports_its_line() -> None:
    p = only_problem(with_lines(l2="name: Demo\n  nested: nope"))
    assert (p.line, p.field) == (3, None)
    assert "YAML syntax error" in p.message


def test_empty_file_is_one_problem_on_line_one() -> None:
    p = only_problem("")
    assert (p.file, p.line, p.field, p.message) == ("demo.yaml", 1, None, "the file is empty")


def test_file_with_only_comments_is_empty() -> None:
    assert only_problem("# nothing yet\n\n").message == "the file is empty"


def test_top_level_must_be_a_mapping() -> None:
    p = only_problem("- id: demo\n- name: Demo\n")
    assert (p.line, p.field) == (1, None)
    assert "mapping" in p.message


def test_duplicate_yaml_key_is_reported_on_its_second_line() -> None:
    p = only_problem(with_lines(l2="name: Demo campaign\nname: Other name"))
    assert (p.line, p.field, p.message) == (3, "name", "duplicate key")


def test_duplicate_nested_yaml_key_has_its_full_path() -> None:
    p = only_problem(with_lines(l9="  max_per_day: 1\n  max_per_day: 2"))
    assert (p.line, p.field, p.message) == (10, "delivery.max_per_day", "duplicate key")


# --- unknown and missing keys ------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_close_one() -> None:
    p = only_problem(with_lines(l5="channels: [email, push]\nlocalez: [en]"))
    assert (p.line, p.field) == (6, "localez")
    assert "unknown key" in p.message
    assert "did you mean 'locales'?" in p.message


def test_unknown_nested_delivery_key_suggests_the_close_one() -> None:
    p = only_problem(with_lines(l9="  max_per_dya: 1"))
    assert (p.line, p.field) == (9, "delivery.max_per_dya")
    assert "did you mean 'max_per_day'?" in p.message


def test_unknown_deadline_key_suggests_the_close_one_and_the_missing_one_is_reported() -> None:
    found = problems(with_lines(l16="    wavs: [P30D, P1D]"))
    assert where(found) == [(16, "deadlines[1].wavs"), (14, "deadlines[1].waves")]
    assert "did you mean 'waves'?" in found[0].message
    assert found[1].message == "required key is missing"


def test_unknown_key_without_a_close_match_lists_the_known_keys() -> None:
    p = only_problem(with_lines(l13="    waves: [P7D, P1D]\n    colour: red"))
    assert (p.line, p.field) == (14, "deadlines[0].colour")
    assert "known: id, at, waves, skip_if, label" in p.message


def test_missing_required_top_level_key_is_reported_on_the_mapping_line() -> None:
    p = only_problem(with_lines(l5="# no channels"))
    assert (p.line, p.field, p.message) == (1, "channels", "required key is missing")


# --- waves and deadlines -----------------------------------------------------------------------------


def test_invalid_duration_names_the_wave() -> None:
    p = only_problem(with_lines(l13="    waves: [P7D, P7X]"))
    assert (p.line, p.field) == (13, "deadlines[0].waves[1]")
    assert "'P7X' is not an ISO-8601 duration" in p.message


def test_months_are_refused_with_a_hint_to_write_days() -> None:
    p = only_problem(with_lines(l16="    waves: [P1M, P1D]"))
    assert (p.line, p.field) == (16, "deadlines[1].waves[0]")
    assert "months and years" in p.message and "P30D" in p.message


def test_years_are_refused() -> None:
    p = only_problem(with_lines(l16="    waves: [P1Y]"))
    assert (p.line, p.field) == (16, "deadlines[1].waves[0]")


def test_wave_items_on_their_own_lines_are_located_exactly() -> None:
    p = only_problem(with_lines(l13="    waves:\n      - P7D\n      - P7X"))
    assert (p.line, p.field) == (15, "deadlines[0].waves[1]")


@pytest.mark.parametrize("wave", ["-P1D", "-PT6H", "P-1D"])
def test_a_negative_wave_is_told_what_a_wave_is(wave: str) -> None:
    p = only_problem(with_lines(l13=f"    waves: [P7D, {wave}]"))
    assert (p.line, p.field) == (13, "deadlines[0].waves[1]")
    assert p.message == (f"{wave!r}: a wave is a duration before the deadline (such as P7D), never negative: "
                         "nothing is sent after a deadline")


def test_waves_know_where_the_file_writes_them() -> None:
    c = parse_campaign(with_lines(l13="    waves:\n      - P1D\n      - P7D"))
    transfer = c.deadline("transfer")
    assert [(w.label, w.line, w.path) for w in transfer.waves] == [
        ("P7D", 15, "deadlines[0].waves[1]"), ("P1D", 14, "deadlines[0].waves[0]")]  # longest first
    assert (transfer.at_line, transfer.path) == (12, "deadlines[0]")


def test_deadline_without_waves_is_refused() -> None:
    p = only_problem(with_lines(l13="    waves: []"))
    assert (p.line, p.field) == (13, "deadlines[0].waves")
    assert "at least one wave" in p.message


def test_deadline_with_null_waves_is_refused() -> None:
    p = only_problem(with_lines(l13="    waves:"))
    assert (p.line, p.field) == (13, "deadlines[0].waves")
    assert "at least one wave" in p.message


def test_same_wave_length_twice_is_refused() -> None:
    p = only_problem(with_lines(l13="    waves: [P7D, P1W]"))
    assert (p.line, p.field) == (13, "deadlines[0].waves[1]")
    assert "listed twice" in p.message


def test_duplicate_deadline_id_points_at_the_first_use() -> None:
    p = only_problem(with_lines(l14="  - id: transfer"))
    assert (p.line, p.field) == (14, "deadlines[1].id")
    assert p.message == "deadline id 'transfer' already used on line 11"


def test_invalid_deadline_time_is_located() -> None:
    p = only_problem(with_lines(l12='    at: "2024-13-28T00:00"'))
    assert (p.line, p.field) == (12, "deadlines[0].at")
    assert "not an ISO date-time" in p.message


def test_deadline_id_must_be_a_slug() -> None:
    p = only_problem(with_lines(l11="  - id: Transfer Deadline"))
    assert (p.line, p.field) == (11, "deadlines[0].id")


def test_empty_deadline_list_is_refused() -> None:
    text = "\n".join(VALID.splitlines()[:9]) + "\ndeadlines: []\n"
    p = only_problem(text)
    assert (p.line, p.field) == (10, "deadlines")


# --- delivery ----------------------------------------------------------------------------------------


def test_local_time_outside_the_window_is_reported_on_local_time() -> None:
    p = only_problem(with_lines(l7='  local_time: "07:30"'))
    assert (p.line, p.field) == (7, "delivery.local_time")
    assert p.message == "07:30 is outside the window 08:00–21:00"


def test_default_local_time_outside_a_narrow_window_is_reported_where_the_delivery_block_starts() -> None:
    found = problems(with_lines(l7="", l8='  window: ["18:00", "21:00"]'))
    assert where(found) == [(8, "delivery.local_time")]  # line 7 is blank: the block starts at its first key
    assert "10:00 is outside the window 18:00–21:00" in found[0].message


def test_window_start_after_end_is_refused() -> None:
    found = problems(with_lines(l8='  window: ["21:00", "08:00"]'))
    assert (8, "delivery.window") in where(found)
    [p] = [p for p in found if p.field == "delivery.window"]
    assert "start must be before the end" in p.message


def test_window_start_equal_to_end_is_refused() -> None:
    found = problems(with_lines(l7='  local_time: "10:00"', l8='  window: ["10:00", "10:00"]'))
    assert where(found) == [(8, "delivery.window")]


def test_window_needs_exactly_two_times() -> None:
    p = only_problem(with_lines(l8='  window: ["08:00", "12:00", "21:00"]'))
    assert (p.line, p.field) == (8, "delivery.window")


def test_malformed_local_time_is_located() -> None:
    p = only_problem(with_lines(l7='  local_time: "25:00"'))
    assert (p.line, p.field) == (7, "delivery.local_time")
    assert "HH:MM" in p.message


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_max_per_day_must_be_a_whole_number_of_at_least_one(value: str) -> None:
    p = only_problem(with_lines(l9=f"  max_per_day: {value}"))
    assert (p.line, p.field) == (9, "delivery.max_per_day")


# --- locales and channels ----------------------------------------------------------------------------


def test_unknown_locale_names_its_index() -> None:
    p = only_problem(with_lines(l3="locales: [en, xx-YY]"))
    assert (p.line, p.field) == (3, "locales[1]")
    assert "'xx-YY' is not a locale Babel knows" in p.message


def test_locale_listed_twice_after_normalization_is_refused() -> None:
    p = only_problem(with_lines(l3="locales: [en, pt-BR, pt_br]"))
    assert (p.line, p.field) == (3, "locales[2]")
    assert "listed twice" in p.message


def test_default_locale_must_be_one_of_the_locales() -> None:
    p = only_problem(with_lines(l4="default_locale: fr"))
    assert (p.line, p.field) == (4, "default_locale")
    assert "'fr' is not one of locales" in p.message


def test_unknown_default_locale_is_refused() -> None:
    p = only_problem(with_lines(l4="default_locale: klingon"))
    assert (p.line, p.field) == (4, "default_locale")


def test_unknown_channel_lists_the_known_ones() -> None:
    p = only_problem(with_lines(l5="channels: [email, sms]"))
    assert (p.line, p.field) == (5, "channels[1]")
    assert p.message == "unknown channel 'sms' (known: email, push)"


def test_channel_listed_twice_is_refused() -> None:
    p = only_problem(with_lines(l5="channels: [email, email]"))
    assert (p.line, p.field) == (5, "channels[1]")


def test_channels_on_their_own_lines_are_located_exactly() -> None:
    p = only_problem(with_lines(l5="channels:\n  - email\n  - fax"))
    assert (p.line, p.field) == (7, "channels[1]")


def test_unknown_category_is_refused() -> None:
    p = only_problem("category: spam\n" + VALID)
    assert (p.line, p.field) == (1, "category")


def test_links_must_be_https() -> None:
    p = only_problem(VALID + "links:\n  help: http://example.com/help\n")
    assert (p.line, p.field) == (18, "links.help")


def test_audience_countries_must_be_two_letter_codes() -> None:
    p = only_problem(VALID + "audience:\n  countries: [ID, Brazil]\n")
    assert (p.line, p.field) == (18, "audience.countries[1]")


# --- many problems at once, and how they print -------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    found = problems(with_lines(
        l3="locales: [en, xx-YY]",
        l5="channels: [email, sms]",
        l9="  max_per_dya: 1",
        l13="    waves: [P7X]",
        l14="  - id: transfer",
    ))
    assert len(found) >= 2
    assert where(found) == [
        (3, "locales[1]"),
        (5, "channels[1]"),
        (9, "delivery.max_per_dya"),
        (13, "deadlines[0].waves[0]"),
        (14, "deadlines[1].id"),
    ]


def test_campaign_error_message_lists_every_problem_one_per_line() -> None:
    with pytest.raises(CampaignError) as info:
        parse_campaign(with_lines(l4="default_locale: fr", l5="channels: [sms]"), source="demo.yaml")
    err = info.value
    assert isinstance(err, UserError)
    assert str(err) == (
        "demo.yaml:4: default_locale: 'fr' is not one of locales ['en', 'pt-BR']\n"
        "demo.yaml:5: channels[0]: unknown channel 'sms' (known: email, push)"
    )
    assert (err.file, err.line, err.field) == ("demo.yaml", 4, "default_locale")


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        (Problem("c.yaml", 12, "deadlines[0].waves[1]", "bad"), "c.yaml:12: deadlines[0].waves[1]: bad"),
        (Problem("c.yaml", 3, None, "YAML syntax error: x"), "c.yaml:3: YAML syntax error: x"),
        (Problem("c.yaml", None, "id", "taken"), "c.yaml: id: taken"),
        (Problem("c.yaml", None, None, "no such file"), "c.yaml: no such file"),
    ],
)
def test_problem_prints_as_file_line_field_message(problem: Problem, text: str) -> None:
    assert str(problem) == text


# --- files -------------------------------------------------------------------------------------------


def test_missing_file_is_a_campaign_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CampaignError) as info:
        load_campaign(missing)
    [p] = info.value.problems
    assert (p.file, p.line, p.field, p.message) == (str(missing), None, None, "no such file")
    with pytest.raises(CampaignError) as info:
        load_campaigns([missing])
    assert [str(p) for p in info.value.problems] == [f"{missing}: no such file"]


def test_a_folder_given_as_a_campaign_file_is_a_campaign_error(tmp_path: Path) -> None:
    with pytest.raises(CampaignError) as info:
        load_campaign(tmp_path)
    [p] = info.value.problems
    assert (p.file, p.line, p.field) == (str(tmp_path), None, None)
    assert p.message.startswith("cannot read")


def test_non_utf8_file_is_a_campaign_error(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(VALID.replace("Demo campaign", "Démo").encode("latin-1"))
    with pytest.raises(CampaignError) as info:
        load_campaign(f)
    assert "not UTF-8" in info.value.problems[0].message


def test_problems_name_the_file_they_come_from(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text(with_lines(l5="channels: [sms]"), encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_campaign(f)
    assert str(info.value.problems[0]) == f"{f}:5: channels[0]: unknown channel 'sms' (known: email, push)"


def test_overlapping_campaign_ids_across_files_are_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(VALID, encoding="utf-8")
    second.write_text(with_lines(l2="name: Another campaign"), encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_campaigns([first, second])
    [p] = info.value.problems
    assert (p.file, p.field) == (str(second), "id")
    assert p.message == f"campaign id 'demo' is already used by {first}"


def test_overlapping_campaign_ids_within_a_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID, encoding="utf-8")
    (tmp_path / "b.yml").write_text(VALID, encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_campaigns([tmp_path])
    assert [(p.file, p.field) for p in info.value.problems] == [(str(tmp_path / "b.yml"), "id")]


def test_load_campaigns_collects_problems_from_every_file(tmp_path: Path) -> None:
    good, bad1, bad2 = tmp_path / "good.yaml", tmp_path / "bad1.yaml", tmp_path / "bad2.yaml"
    good.write_text(VALID, encoding="utf-8")
    bad1.write_text(with_lines(l1="id: one", l5="channels: [sms]"), encoding="utf-8")
    bad2.write_text("", encoding="utf-8")
    with pytest.raises(CampaignError) as info:
        load_campaigns([good, bad1, bad2])
    assert [(p.file, p.line) for p in info.value.problems] == [(str(bad1), 5), (str(bad2), 1)]


def test_distinct_campaigns_load_together_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(VALID, encoding="utf-8")
    second.write_text(with_lines(l1="id: other"), encoding="utf-8")
    assert [c.id for c in load_campaigns([first, second])] == ["demo", "other"]


# --- sender ------------------------------------------------------------------------------------------


def test_a_campaign_without_a_sender_uses_the_global_one() -> None:
    assert parse_campaign(VALID).sender is None


def test_the_sender_gives_name_address_and_reply_to() -> None:
    c = parse_campaign(VALID + "sender:\n  name: Acme Radio, Inc.\n  email: News@Acme.example\n"
                               "  reply_to: help@acme.example\n")
    assert c.sender is not None
    assert (c.sender.name, c.sender.email, c.sender.reply_to) == ("Acme Radio, Inc.", "news@acme.example",
                                                                   "help@acme.example")
    assert c.sender.from_header == '"Acme Radio, Inc." <news@acme.example>'


def test_reply_to_is_optional() -> None:
    c = parse_campaign(VALID + "sender:\n  name: Acme\n  email: news@acme.example\n")
    assert c.sender is not None and c.sender.reply_to is None


@pytest.mark.parametrize(("lines", "field", "words"), [
    ("  name: Acme\n  email: not-an-address\n", "sender.email", "not an email address"),
    ("  name: Acme\n  email: news@acme.example\n  reply_to: nobody\n", "sender.reply_to", "not an email address"),
    ("  name: Acme\n  email: a@b.example\n  reply_to: \"x@y.example\\r\\nBcc: z@z.example\"\n", "sender.reply_to",
     "not an email address"),
    (f"  name: {'A' * 101}\n  email: news@acme.example\n", "sender.name", "longer than 100"),
    ("  name: \"Acme\\nBcc: x@y.example\"\n  email: news@acme.example\n", "sender.name", "line break"),
    ("  name: Acme <evil@x.example>\n  email: news@acme.example\n", "sender.name", "character of an address"),
    ("  email: news@acme.example\n", "sender.name", "required key is missing"),
    ("  name: Acme\n  email: news@acme.example\n  from: x\n", "sender.from", "unknown key"),
])
def test_a_bad_sender_is_located(lines: str, field: str, words: str) -> None:
    with pytest.raises(CampaignError) as info:
        parse_campaign(VALID + "sender:\n" + lines)
    problems = [p for p in info.value.problems if p.field == field]
    assert problems and words in problems[0].message, info.value.problems
    assert problems[0].line is not None and problems[0].line > 16


# --- per-deadline channels -----------------------------------------------------------------------------


def test_a_deadline_is_announced_on_the_campaigns_channels_unless_it_names_its_own() -> None:
    c = parse_campaign(with_lines(l13="    waves: [P7D, P1D]\n    channels: [push, email]"))
    assert c.deadline("transfer").channels == ("email", "push")  # in the campaign's order
    c = parse_campaign(with_lines(l13="    waves: [P7D, P1D]\n    channels: [email]"))
    assert (c.deadline("transfer").channels, c.deadline("refund").channels) == (("email",), ("email", "push"))
    assert c.channels_vary


@pytest.mark.parametrize(("channels", "words"), [
    ("[sms]", "not one of the campaign's channels"),
    ("[email, email]", "listed twice"),
    ("[]", "expected a non-empty list"),
])
def test_a_deadlines_channels_are_a_subset_of_the_campaigns(channels: str, words: str) -> None:
    with pytest.raises(CampaignError) as info:
        parse_campaign(with_lines(l13=f"    waves: [P7D, P1D]\n    channels: {channels}"))
    [problem] = info.value.problems
    assert problem.field is not None and problem.field.startswith("deadlines[0].channels")
    assert words in problem.message and problem.line == 14


def test_a_deadline_may_not_name_a_channel_the_campaign_does_not_have() -> None:
    text = with_lines(l5="channels: [email]", l13="    waves: [P7D, P1D]\n    channels: [push]")
    with pytest.raises(CampaignError) as info:
        parse_campaign(text)
    assert "not one of the campaign's channels (email)" in info.value.problems[0].message


# --- audience.where, a deadline's where, audience.holdout -------------------------------------------------------


def test_conditions_and_a_holdout_are_read_with_the_campaign() -> None:
    c = parse_campaign(with_lines(
        l5="channels: [email, push]\ncategory: marketing\naudience:\n  countries: [id]\n"
           "  where: 'plan in [\"premium\", \"family\"] and months >= 3'\n  holdout: 2.5%",
        l16='    waves: [P30D, P1D]\n    where: "not exists(refunded)"'))
    assert c.countries == ("ID",) and str(c.where) == 'plan in ["premium", "family"] and months >= 3'
    assert c.holdout == 250 and c.holdout_share == "2.5%"
    assert str(c.deadline("refund").where) == "not exists(refunded)" and c.deadline("transfer").where is None


@pytest.mark.parametrize(("replacement", "line", "field", "message"), [
    ({"l5": "channels: [email]\naudience:\n  where: plan = \"x\""}, 7, "audience.where",
     "column 6: unexpected character '=' (compare with ==)"),
    ({"l16": "    waves: [P30D]\n    where: 'plan in [\"a\", 1]'"}, 17, "deadlines[1].where",
     "column 9: a list holds values of one kind"),
    ({"l5": "channels: [email]\naudience:\n  holdout: 10%"}, 7, "audience.holdout",
     "only a marketing campaign holds people out"),
    ({"l5": "channels: [email]\ncategory: marketing\naudience:\n  holdout: 60%"}, 8, "audience.holdout",
     "from 0.1% to 50%"),
    ({"l5": "channels: [email]\ncategory: marketing\naudience:\n  holdout: lots"}, 8, "audience.holdout",
     "expected a share such as 10%"),
    ({"l5": "channels: [email]\naudience:\n  where: ''"}, 7, "audience.where", "expected a non-empty text"),
])
def test_a_wrong_condition_or_holdout_is_located_by_line_field_and_column(
        replacement: dict[str, str], line: int, field: str, message: str) -> None:
    with pytest.raises(CampaignError) as caught:
        parse_campaign(with_lines(**replacement), source="promo.yaml")
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == ("promo.yaml", line, field)
    assert message in problem.message
