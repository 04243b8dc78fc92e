"""The catalogs of notifier serve's own pages (gettext domain ``web``), shipped with the package and checked by
``notifier i18n check`` with the campaigns' catalogs. After editing a page: ``python -m notifier.web.locales``
extracts its strings and merges them into each locale's catalog (new entries need a translator)."""

from __future__ import annotations

from pathlib import Path

from notifier.errors import Problem

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE.parent / "templates"
DOMAIN = "web"
UI_LOCALES = ("en", "id", "pt-BR", "es-MX")


def check_ui_catalogs() -> list[Problem]:
    """The translation gate for the pages: every string translated in every UI locale."""
    from notifier.catalogs import check_catalogs

    return check_catalogs(HERE, UI_LOCALES, DOMAIN)


def refresh() -> None:
    """Extract the pages' strings and merge them into every UI locale's catalog."""
    from notifier.catalogs import extract, update

    extract(TEMPLATES, HERE, DOMAIN)
    for path in update(HERE, UI_LOCALES, DOMAIN):
        print(f"updated {path}")


if __name__ == "__main__":
    refresh()
