"""The team: people with roles (``roles``, ``people``), their personal API tokens (``tokens``) and the four-eyes
approval of a campaign's versions (``approvals``). What each one did is in the audit log (``notifier.ledger.audit``).
"""
