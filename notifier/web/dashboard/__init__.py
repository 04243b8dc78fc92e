"""The dashboard of ``notifier serve``: marketing plans, previews, schedules and watches a campaign in a browser.

``auth`` (passwords, sessions, the login limit) needs nothing of the web extra; ``access``, ``pages`` and
``controls`` are the FastAPI side, mounted on the application by :func:`install`.
"""

from __future__ import annotations

from typing import Any

from notifier.config import Settings


def install(app: Any, settings: Settings) -> None:
    """Mount the dashboard on ``app``: its pages, its controls and how it answers a stranger (needs the web extra,
    which is why nothing of FastAPI is imported before this is called)."""
    from notifier.web.dashboard import controls

    controls.install(app, settings)
