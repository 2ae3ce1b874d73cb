"""Who a campaign sends to, set-based: the one statement that freezes its recipients, and
the same expression counted for readiness' recipient estimate.

The members of the audience version frozen at activation, each with the first reason it
may not be sent to, in the waterfall's order (audiences/reach.py is the one definition of
reachable: address, consent, suppression, regional restriction) and then the frequency
cap (sends to the profile in the environment within the period, across campaigns):

    INSERT INTO campaigns_send (campaign_id, profile_id, state, reason, idempotency_key, created_at)
    SELECT %s, id, CASE WHEN reason = '' THEN 'queued' ELSE 'skipped' END, reason, … FROM (<members, flagged>)
    WHERE 1 = 1  -- (SQLite needs a WHERE before ON CONFLICT in an INSERT … SELECT)
    ON CONFLICT (campaign_id, profile_id) DO NOTHING

One statement, queued and skipped rows alike; a rerun (a killed worker, a second job)
adds nothing (the unique constraint), so recipients never change once frozen.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from audiences.models import AudienceVersion, Membership, Profile
from audiences.reach import reachability
from campaigns.models import Campaign, Send, SendState, SkipReason


def recent_sends(campaign: Campaign, now: datetime) -> Subquery:
    """How many messages each profile was sent in the campaign's cap period, across the
    environment's other campaigns (a correlated count on the send_profile_sent index)."""
    since = now - timedelta(days=campaign.frequency_period_days or 7)
    counted = (
        Send.objects.filter(profile=OuterRef("pk"), state=SendState.SENT, sent_at__gte=since)
        .exclude(campaign_id=campaign.pk)
        .order_by()
        .values("profile")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Subquery(counted, output_field=IntegerField())


def flagged_members(campaign: Campaign, version: AudienceVersion, *, now: datetime | None = None) -> QuerySet[Profile]:
    """The version's members, each annotated with `skip_reason` ('' when it may be sent)."""
    now = now or timezone.now()
    gate = reachability(campaign.environment, campaign.channel)
    members = Profile.objects.filter(
        Exists(Membership.objects.filter(version_id=version.pk, profile_id=OuterRef("pk")))
    ).order_by()
    whens = [
        When(~gate.addressed, then=Value(SkipReason.NO_ADDRESS.value)),
        When(~gate.consent, then=Value(SkipReason.NO_CONSENT.value)),
        When(~gate.not_suppressed, then=Value(SkipReason.SUPPRESSED.value)),
        When(~gate.not_restricted, then=Value(SkipReason.REGIONAL_RESTRICTION.value)),
    ]
    if campaign.frequency_cap:
        members = members.annotate(recent=Coalesce(recent_sends(campaign, now), Value(0)))
        whens.append(When(Q(recent__gte=campaign.frequency_cap), then=Value(SkipReason.FREQUENCY_CAP.value)))
    return members.annotate(skip_reason=Case(*whens, default=Value(""), output_field=CharField()))


def estimate(campaign: Campaign, version: AudienceVersion) -> dict[str, Any]:
    """Members, recipients and skipped by reason, in one grouped query."""
    # skip_reason is an annotation of flagged_members (django-stubs cannot see it).
    rows = flagged_members(campaign, version).values("skip_reason").annotate(n=Count("pk")).order_by()  # type: ignore[misc]
    by_reason = {row["skip_reason"]: row["n"] for row in rows}
    recipients = by_reason.pop("", 0)
    return {"members": recipients + sum(by_reason.values()), "recipients": recipients, "skipped": by_reason}


def idempotency_key(campaign_id: int, profile_id: int) -> str:
    """The key a vendor that takes one deduplicates a recipient's message by."""
    return f"campaign-{campaign_id}-profile-{profile_id}"


def freeze(campaign: Campaign, version: AudienceVersion, *, now: datetime | None = None) -> int:
    """Freeze the campaign's recipients (queued) and who is skipped (with the reason), in one
    INSERT … SELECT; returns the rows added (0 on a rerun)."""
    now = now or timezone.now()
    sql, params = (
        flagged_members(campaign, version, now=now)
        .annotate(member_id=F("pk"))
        .values("member_id", "skip_reason")
        .query.sql_with_params()
    )
    table = connection.ops.quote_name(Send._meta.db_table)
    # The table name comes from the model and `sql` from the ORM's compiler; values are bound.
    statement = f"""
        INSERT INTO {table} (campaign_id, profile_id, state, reason, idempotency_key, vendor_id, created_at)
        SELECT %s, flagged.member_id,
               CASE WHEN flagged.skip_reason = '' THEN %s ELSE %s END,
               flagged.skip_reason,
               %s || CAST(flagged.member_id AS VARCHAR(20)),
               '',
               %s
        FROM ({sql}) flagged
        WHERE 1 = 1
        ON CONFLICT (campaign_id, profile_id) DO NOTHING"""  # noqa: S608
    prefix = idempotency_key(campaign.pk, 0)[:-1]
    with connection.cursor() as cursor:
        cursor.execute(statement, (campaign.pk, SendState.QUEUED.value, SendState.SKIPPED.value, prefix, now, *params))
        return cursor.rowcount
