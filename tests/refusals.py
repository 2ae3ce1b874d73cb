"""What a refused caller meets, for the permission tests: the status and the problem `code` (not
only the status), and for a refused change the one denied audit event.

    problem = refused(response, 403, "permission_denied")
    denied_event(user, "audience.edit")  # the AuditEvent: outcome denied, that action, that person
"""

from __future__ import annotations

from typing import Any

from governance.models import AuditEvent, Environment, Outcome


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    """The problem+json body of a refusal, after checking its status, type and code, and that it
    carries a hint the caller can act on."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:600])
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    problem = response.json()
    assert problem["code"] == code, problem
    assert problem.get("hint"), problem
    return problem


def denied_event(user: Any, action: str, *, environment: Environment | None = None, after: int = 0) -> AuditEvent:
    """The one denied audit event of `user` attempting `action` (after event id `after`)."""
    events = AuditEvent.objects.filter(id__gt=after, actor_user=user, action=action, outcome=Outcome.DENIED)
    if environment is not None:
        events = events.filter(environment=environment)
    found = list(events)
    written = list(AuditEvent.objects.filter(id__gt=after).values_list("action", "outcome", "actor_label"))
    assert len(found) == 1, f"expected one denied {action!r} event of {user}; the audit trail has {written}"
    return found[0]


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
