"""The models of the studio's JSON API (``notifier.web.studio_api``): what its OpenAPI document describes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProblemOut(BaseModel):
    file: str
    line: int | None
    field: str | None
    message: str


class Refusal(BaseModel):
    """Every refusal: why, and for wrong input (422) each problem where it is."""

    error: str
    problems: list[ProblemOut] | None = Field(None, description="on a 422 only")


class SavedOut(BaseModel):
    """A saved change: the version it made, and what the gate says of it (problems stop scheduling)."""

    id: str
    version: int
    problems: list[ProblemOut]
    warnings: list[ProblemOut]


class DeadlineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    label: str | None = None
    at: str | None = Field(None, description="wall time YYYY-MM-DDTHH:MM in each recipient's zone", examples=[
        "2027-03-01T00:00"])
    waves: list[str] | None = Field(None, description="ISO-8601 durations before it", examples=[["P30D", "P7D"]])
    skip_if: str | None = Field(None, description="the action that ends its reminders")
    link: str | None = None
    channels: list[str] | None = None
    where: str | None = Field(None, description="a condition: only recipients who meet it are told about this "
                              "deadline", examples=['plan == "family"'])


class StarterIn(BaseModel):
    """A campaign from a form (GET /api/v1/starters gives filled-in examples); every field is checked as
    ``campaign validate`` does, each problem named by its field."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    name: str | None = None
    category: str | None = None
    sender_name: str | None = None
    sender_email: str | None = None
    locales: list[str] | None = None
    channels: list[str] | None = None
    countries: list[str] | None = None
    links: dict[str, str] | None = None
    deadlines: list[DeadlineIn] | None = None
    local_time: str | None = None
    window: list[str] | None = None
    source_locale: str | None = None
    where: str | None = Field(None, description="audience.where: a condition on the recipients' fields and "
                              "attributes; only those who meet it are in the audience",
                              examples=['plan in ["premium", "family"] and country != "SG"'])
    holdout: str | None = Field(None, description="audience.holdout, marketing only: a share of the audience "
                                "that gets nothing, to compare with the rest", examples=["10%"])

    def form(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class CheckOut(BaseModel):
    problems: list[ProblemOut]


class CampaignOut(BaseModel):
    id: str
    name: str
    version: int | None = Field(description="the latest stored version; null for a campaign kept in files")
    stored: bool
    state: str = Field(description="draft | scheduled | paused | cancelled")
    phase: str = Field(description="draft | sending | finished | blocked | paused | cancelled")
    locales: list[str]
    source_locale: str
    channels: list[str]
    countries: list[str]
    where: str | None = Field(None, description="audience.where as written; null: everyone in the countries")
    holdout: str | None = Field(None, description="audience.holdout, e.g. 10%; null: nobody is held out")
    templates: str
    deadlines: list[dict[str, str | None]] = Field(description="id, label and where (null: every recipient)")
    file: str = Field(description="the campaign's YAML")


class EntryOut(BaseModel):
    key: str = Field(description="what PUT .../translations/{locale} takes")
    source: list[str]
    target: list[str]
    plural_names: list[str]
    status: str = Field(description="missing | fuzzy | done")
    problems: list[str]
    where: list[str]


class TranslationCheckIn(BaseModel):
    """One entry as the translator has it so far: checked, not saved."""
    model_config = ConfigDict(extra="forbid")
    key: str = Field(max_length=8000, description="the entry's key, as GET .../translations/{locale} gives it")
    forms: list[str] = Field(max_length=6, description="one text per plural form, gettext placeholders "
                             "(%(date)s), as PUT .../translations/{locale} takes them",
                             examples=[["Harga berubah pada %(date)s"]])


class TranslationCheckOut(BaseModel):
    status: str = Field(description="missing | done: what the entry would be if saved")
    problems: list[str] = Field(description="the translation gate's problems with these forms (none: it passes)")


class GateOut(BaseModel):
    errors: list[ProblemOut]
    warnings: list[ProblemOut]


class PreviewOut(BaseModel):
    channel: str
    locale: str
    send_key: str
    subject: str
    html: str
    text: str
    title: str
    body: str
    link: str | None
    problems: list[str]


class SeedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str = Field(description="email | push")
    address: str = Field(description="an email address or a push token", max_length=4096)
    name: str | None = None
    locale: str | None = None


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locale: str
    send: str = Field(description="a send key, as GET .../preview/choices names them")
    channel: str


class UploadOut(BaseModel):
    id: str
    file_name: str
    state: str = Field(description="waiting | importing | done | failed")
    size_bytes: int
    read_bytes: int
    percent: int
    accepted: int
    rejected: int
    guessed: int
    error: str | None


class SniffOut(BaseModel):
    format: str
    columns: list[str]
    suggestions: dict[str, str | None]
    fields: list[str]
    sample: list[dict[str, Any]]
    problems: list[str]
