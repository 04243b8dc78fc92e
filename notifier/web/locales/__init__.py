"""The catalogs of notifier serve's own pages, shipped with the package and checked by ``notifier i18n check`` with
the campaigns' catalogs: domain ``web`` for the pages recipients see (unsubscribe), in every language we send in,
and domain ``dashboard`` for marketing's dashboard, in English and Indonesian. After editing a page:
``python -m notifier.web.locales`` extracts the strings and merges them into each catalog (new entries need a
translator)."""

from __future__ import annotations

from pathlib import Path

from notifier.errors import Problem

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "templates"
DOMAIN = "web"
UI_LOCALES = ("en", "id", "pt-BR", "es-MX")
DASHBOARD_TEMPLATES = HERE.parent / "dashboard" / "templates"
DASHBOARD = "dashboard"
DASHBOARD_LOCALES = ("en", "id")
# Text the dashboard builds in code: the chart's, and the words of the ledger's codes (shared with the CLI).
DASHBOARD_CODE = (HERE.parent / "dashboard" / "chart.py", HERE.parent / "dashboard" / "funnel.py",
                  HERE.parent.parent / "words.py",
                  HERE.parent.parent / "studio" / "dryrun.py")  # the studio's reasons not to send
# (templates, modules, domain, locales) of every catalog here
CATALOGS = ((TEMPLATES, (), DOMAIN, UI_LOCALES), (DASHBOARD_TEMPLATES, DASHBOARD_CODE, DASHBOARD, DASHBOARD_LOCALES))


def check_ui_catalogs() -> list[Problem]:
    """The translation gate for the pages: every string translated in every UI locale."""
    from notifier.catalogs import check_catalogs

    return [p for _templates, _code, domain, locales in CATALOGS for p in check_catalogs(HERE, locales, domain)]


def refresh() -> None:
    """Extract the pages' strings and merge them into every UI locale's catalog."""
    from notifier.catalogs import extract, update

    for templates, code, domain, locales in CATALOGS:
        extract(templates, HERE, domain, code)
        for path in update(HERE, locales, domain):
            print(f"updated {path}")

