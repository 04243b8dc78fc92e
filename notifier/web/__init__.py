"""``notifier serve``: the web side of the feedback loop (SendGrid's signed events, one-click unsubscribe, completed
actions, health), on FastAPI. Install with ``pip install 'notifier[web]'``."""

from notifier.web.app import create_app, running

__all__ = ["create_app", "running"]
