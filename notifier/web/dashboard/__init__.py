"""The dashboard of ``notifier serve``: marketing plans, previews, schedules and watches a campaign in a browser.

``auth`` (passwords, sessions, the login limit) needs nothing of the web extra; ``access``, ``pages`` and
``controls`` are the FastAPI side, mounted by :func:`notifier.web.dashboard.controls.install`.
"""
