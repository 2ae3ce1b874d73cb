"""Reads of destinations: the list and one destination of the actor's environment (404 for
any other), and their health as the API, the admin and /status show it — the circuit
breaker, the last success and failure, and the work waiting — without calling a vendor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from governance import policy
from governance.actors import Actor
from integrations.destinations.breakers import Breaker, Snapshot
from integrations.destinations.errors import DestinationNotFound
from integrations.models import Destination, DestinationPush, PushState


def destination_list(*, actor: Actor) -> QuerySet[Destination]:
    policy.require(actor, "destination.view")
    return Destination.objects.filter(environment=actor.environment).select_related("environment", "created_by")


def destination_get(*, actor: Actor, destination_id: int) -> Destination:
    """A destination of the actor's environment; 404 for any other."""
    destination = destination_list(actor=actor).filter(pk=destination_id).first()
    if destination is None:
        raise DestinationNotFound(f"No destination {destination_id} in {actor.environment.slug}.")
    return destination


def destination_health(*, actor: Actor, destination: Destination) -> dict[str, Any]:
    policy.require(actor, "destination.view", destination)
    return destination_status(destination)


def breaker_of(destination: Destination, clock: Callable[[], float] | None = None) -> Breaker:
    """The circuit breaker of `destination` (its state is shared through Redis)."""
    return Breaker.for_destination(destination, clock)


def destination_status(destination: Destination, *, push_counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Health as the API, the admin and /status show it: breaker, last success, queued work.
    No vendor call; secrets excluded."""
    snap = breaker_of(destination).snapshot()
    counts = push_counts if push_counts is not None else _push_counts([destination.pk]).get(destination.pk, {})
    deferred = counts.get(PushState.DEFERRED, 0)
    if not destination.is_active:
        status = "inactive"
    elif snap.state != "closed" or deferred:
        status = "degraded"
    elif destination.last_failure_at and (
        destination.last_success_at is None or destination.last_failure_at > destination.last_success_at
    ):
        status = "failing"
    elif destination.last_success_at is None:
        status = "unknown"
    else:
        status = "ok"
    next_retry = (
        DestinationPush.objects.filter(destination=destination, state=PushState.DEFERRED)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
        if deferred
        else None
    )
    return {
        "status": status,
        "breaker": snap.as_dict(),
        "last_success_at": destination.last_success_at,
        "last_failure_at": destination.last_failure_at,
        "last_error": destination.last_error,
        "pushes": {
            "pending": counts.get(PushState.PENDING, 0),
            "deferred": deferred,
            "failed": counts.get(PushState.FAILED, 0),
        },
        "next_retry_at": next_retry,
        "explanation": _explain(destination, status, snap, deferred, next_retry),
    }


def _explain(destination: Destination, status: str, snap: Snapshot, deferred: int, next_retry: Any) -> str:
    if status == "inactive":
        return "Switched off: nothing is sent; its pushes wait until it is switched on again."
    if status == "degraded":
        parts = []
        if snap.state != "closed":
            parts.append(
                f"Calls are paused after {snap.failures} consecutive failures (last: {snap.last_error or 'unknown'})"
            )
        if deferred:
            when = f" from {clock_text(next_retry)}" if next_retry else ""
            parts.append(f"{deferred} push(es) are queued and will be retried{when}; nothing was lost")
        return "; ".join(parts) + "."
    if status == "failing":
        return f"The last call failed: {(destination.last_error or 'see last_error').rstrip('.')}."
    if status == "unknown":
        return "Nothing has been sent yet; POST /api/v1/destinations/{id}/test checks the connection."
    return "Working."


def _push_counts(destination_ids: list[int]) -> dict[int, dict[str, int]]:
    rows = (
        DestinationPush.objects.filter(destination_id__in=destination_ids)
        .exclude(state=PushState.SUCCEEDED)
        .values("destination_id", "state")
        .annotate(n=Count("id"))
    )
    out: dict[int, dict[str, int]] = {}
    for row in rows:
        out.setdefault(row["destination_id"], {})[row["state"]] = row["n"]
    return out


def destination_statuses(destinations: Sequence[Destination]) -> dict[int, dict[str, Any]]:
    counts = _push_counts([d.pk for d in destinations])
    return {d.pk: destination_status(d, push_counts=counts.get(d.pk, {})) for d in destinations}


# --- in words -----------------------------------------------------------------------------


def clock_text(at: datetime | None) -> str:
    """ "14:05 UTC" today, "2026-11-28 14:05 UTC" another day, "soon" when unknown."""
    if at is None:
        return "soon"
    local = timezone.localtime(at, timezone.get_fixed_timezone(0))
    today = timezone.localtime(timezone.now(), timezone.get_fixed_timezone(0)).date()
    return f"{local:%H:%M} UTC" if local.date() == today else f"{local:%Y-%m-%d %H:%M} UTC"


def remaining_text(push: DestinationPush) -> str:
    """The work still queued, in words: "12,000 added and 300 removed members"."""
    done = (push.payload or {}).get("progress") or {}
    if push.kind == "send":
        recipients = len(((push.payload or {}).get("batch") or {}).get("recipients") or [])
        left = max(recipients - int(done.get("recipients", 0)), 0)
        return f"{left:,} recipient(s)"
    added = max(len(push.payload.get("added") or []) - int(done.get("added", 0)), 0)
    removed = max(len(push.payload.get("removed") or []) - int(done.get("removed", 0)), 0)
    parts = [f"{added:,} added" if added else "", f"{removed:,} removed" if removed else ""]
    text = " and ".join(p for p in parts if p) or "0"
    return f"{text} members"
