"""Adoption and policy metrics, read from the audit trail and the request log.

`workflows.py` names the workflows measured (start and finish actions, routes); `period.py`
parses `environment`, `since`, `until`; `adoption.py` and `feedback.py` compute the
reports set-based in SQL; `simulation.py` replays a month against a proposed rule;
`charts.py` draws the admin reports' SVG; `selectors.py` is the entry with the access
check; `services.py` files a proposed approval-policy change.
"""
