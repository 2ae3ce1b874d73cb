"""The one audit point: every state-changing service writes exactly one AuditEvent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

from governance.models import AuditEvent, Outcome

if TYPE_CHECKING:
    from governance.actors import Actor
    from governance.policy import Decision


def describe_target(target: Any) -> tuple[str, str, str]:
    """(type, id, label) of a model instance, a (type, id, label) tuple, or nothing."""
    if target is None:
        return "", "", ""
    if isinstance(target, tuple):
        kind, ident, label = target
        return str(kind), str(ident), str(label)[:200]
    if isinstance(target, models.Model):
        return target._meta.label_lower, str(target.pk), str(target)[:200]
    return type(target).__name__.lower(), "", str(target)[:200]


def record(
    actor: Actor,
    action: str,
    target: Any = None,
    *,
    outcome: str = Outcome.ALLOWED,
    decision: Decision | None = None,
    reasons: list[str] | None = None,
    changes: dict[str, Any] | None = None,
    approval_refs: list[Any] | None = None,
) -> AuditEvent:
    """Write one audit event in the caller's transaction."""
    target_type, target_id, target_label = describe_target(target)
    all_reasons = list(reasons or [])
    if decision is not None:
        all_reasons = [*decision.reasons, *all_reasons]
    return AuditEvent.objects.create(
        environment=actor.environment,
        actor_user=actor.user,
        actor_label=actor.label,
        token=actor.token,
        door=actor.door,
        ip=actor.ip,
        request_id=actor.request_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_label=target_label,
        outcome=outcome,
        reasons=all_reasons,
        changes=changes or {},
        approval_refs=approval_refs or [],
    )
