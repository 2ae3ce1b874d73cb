"""Reads of exports, scoped to the actor's environment: everyone sees the exports they ran;
compliance reviewers and admins see all of the environment's (they answer for what leaves).
Another environment's export, or one the actor may not see, is 404."""

from __future__ import annotations

from django.db.models import QuerySet

from audiences.exports.errors import ExportNotFound, ExportNotYours
from audiences.models import Export
from governance import policy
from governance.actors import Actor
from governance.roles import ADMIN, COMPLIANCE_REVIEWER

SEES_ALL = frozenset({ADMIN, COMPLIANCE_REVIEWER})


def _visible(actor: Actor) -> QuerySet[Export]:
    queryset = Export.objects.filter(environment=actor.environment).select_related("audience", "job", "created_by")
    if actor.is_system or SEES_ALL & set(actor.roles):
        return queryset
    return queryset.filter(created_by=actor.user)


def export_list(*, actor: Actor) -> QuerySet[Export]:
    """`export.view`: the exports the actor may see, newest first."""
    policy.require(actor, "export.view")
    return _visible(actor).order_by("-id")


def export_get(*, actor: Actor, export_id: int) -> Export:
    """`export.view`: one export, or ExportNotFound (404)."""
    policy.require(actor, "export.view")
    export = _visible(actor).filter(pk=export_id).first()
    if export is None:
        raise ExportNotFound(f"There is no export {export_id} here.")
    return export


def export_get_own(*, actor: Actor, export_id: int) -> Export:
    """An export the actor ran (to download it); 404 when they may not see it, 403 when it
    is someone else's."""
    export = export_get(actor=actor, export_id=export_id)
    if not actor.is_system and export.created_by_id != getattr(actor.user, "pk", None):
        raise ExportNotYours(f"Export {export.pk} was run by someone else.")
    return export
