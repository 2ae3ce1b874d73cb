"""Governance, the ground every app stands on: who acts (actors, roles, access), what they
may do (the policy engine), what waits for other people's votes (approvals), what is
recorded (the audit trail) and announced (the outbox), and the limits, feature flags and
configuration admins keep.

Each topic that writes governed state is a package with `services.py` (writes),
`selectors.py` (reads with access checks) and `errors.py`, plus its own helpers:
`access/`, `approvals/`, `audit/`, `configuration/`, `flags/`, `limits/`; `policy/` is the
one policy point. The doors are `api/` and `admin/`, one module per area; the Celery
tasks are `tasks.py`. Nothing here imports another app.
"""
