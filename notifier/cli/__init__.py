"""The ``notifier`` command: parse options, call one function, print. No logic lives here.

Each module registers its commands on the one group in ``_app``: ``ledger`` (db, audience, recipient),
``campaigns`` (campaign …), ``delivery`` (dispatch, worker, status, demo, emulator), ``content`` (preview, i18n),
``feedback`` (serve, suppressions, actions, purge), ``results`` (campaign report), ``team`` (people, audit).
"""

from notifier.cli import campaigns, content, delivery, feedback, ledger, results, team  # noqa: F401  (registers them)
from notifier.cli._app import CliContext, cli, main

__all__ = ["CliContext", "cli", "main"]
