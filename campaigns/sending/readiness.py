"""Readiness: the checklist a campaign must pass before it is activated.

Each check is `{"code", "passed", "message", "hint"}`; activation refuses with the failing
ones (422 `campaign_not_ready`). The checks read, in a fixed number of queries:

    audience_published   the audience has a live version
    audience_not_empty   … with members
    consent_coverage     some members have consent for the channel (how many do not)
    assets_complete      what the channel needs (email: subject, body, sender; sms, push: body)
    merge_fields_known   every {{merge_field}} is a profile field or a known custom attribute
    destination_channel  the destination's adapter sends this channel
    destination_healthy  active, and its circuit breaker is not open
    channel_flag         sms and push are behind the flags channel_sms and channel_push
    quota                the `campaign-activate` quota (when an admin set one) has room
    schedule             a scheduled time is in the future (and campaign_scheduling is on)
    change_window        in an environment with change windows, one is open now (or the send is scheduled)
    recipient_estimate   recipients after consent, suppressions, restrictions and the frequency cap
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from campaigns.definitions import checks
from campaigns.models import Campaign
from campaigns.sending import freeze
from governance.actors import Actor
from governance.approvals import windows
from governance.flags.selectors import flag_active_for
from governance.limits.selectors import quota_status
from integrations.destinations.breakers import OPEN
from integrations.destinations.selectors import breaker_of

QUOTA = "campaign-activate"
CHANNEL_FLAGS = {"sms": "channel_sms", "push": "channel_push"}
SCHEDULING_FLAG = "campaign_scheduling"


@dataclass
class Readiness:
    checks: list[dict[str, Any]] = field(default_factory=list)
    estimate: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(check["passed"] for check in self.checks)

    @property
    def failing(self) -> list[dict[str, Any]]:
        return [check for check in self.checks if not check["passed"]]

    def add(self, code: str, passed: bool, message: str, hint: str = "") -> None:
        self.checks.append({"code": code, "passed": passed, "message": message, "hint": "" if passed else hint})

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": self.checks, "estimate": self.estimate}


def readiness(campaign: Campaign, actor: Actor, *, now: Any = None) -> Readiness:
    """Every check, passed or not, with a hint for each that failed."""
    now = now or timezone.now()
    result = Readiness()
    audience = campaign.audience
    version = audience.live_version
    channel = campaign.channel
    result.add(
        "audience_published",
        version is not None,
        f"{audience.name!r} is published (version {version.number})."
        if version
        else f"{audience.name!r} is not published.",
        f"Publish the audience first (POST /api/v1/audiences/{audience.pk}/publish).",
    )
    estimate: dict[str, Any] = {"members": 0, "recipients": 0, "skipped": {}}
    if version is not None:
        estimate = freeze.estimate(campaign, version)
    result.estimate = estimate
    members = estimate["members"]
    result.add(
        "audience_not_empty",
        members > 0,
        f"The live version has {members:,} members." if version else "There is no live version.",
        "Loosen the audience's rules or wait for data, then publish it again; a campaign to nobody sends nothing.",
    )
    without = estimate["skipped"].get("no_consent", 0) + estimate["skipped"].get("no_address", 0)
    covered = members - without
    result.add(
        "consent_coverage",
        covered > 0,
        f"{covered:,} of {members:,} members have an address and {channel} consent.",
        f'Members need {channel} consent: add {{"consent": "{channel}", "is": true}} to the audience\'s rules, or '
        "choose the channel they consented to.",
    )
    assets = campaign.assets or {}
    missing = checks.missing_assets(channel, assets)
    result.add(
        "assets_complete",
        not missing,
        "The assets are complete." if not missing else f"The {channel} assets lack: {', '.join(missing)}.",
        f"Send them with PATCH /api/v1/campaigns/{campaign.pk} (assets.{', assets.'.join(missing)}).",
    )
    unknown = [p for p in checks.asset_problems(campaign.environment, channel, assets)]
    result.add(
        "merge_fields_known",
        not unknown,
        "Every merge field is known." if not unknown else " ".join(p["message"] for p in unknown),
        " ".join(p["hint"] for p in unknown[:1]),
    )
    destination = campaign.destination
    channel_problems = checks.destination_problems(destination, channel)
    result.add(
        "destination_channel",
        not channel_problems,
        f"{destination.name!r} sends {channel}." if not channel_problems else channel_problems[0]["message"],
        channel_problems[0]["hint"] if channel_problems else "",
    )
    snap = breaker_of(destination).snapshot()
    healthy = destination.is_active and snap.state != OPEN
    result.add(
        "destination_healthy",
        healthy,
        f"{destination.name!r} is available."
        if healthy
        else (
            f"{destination.name!r} is switched off."
            if not destination.is_active
            else f"{destination.name!r} is unavailable ({snap.failures} failures, "
            f"last: {snap.last_error or 'unknown'})."
        ),
        "Switch it on (PATCH /api/v1/destinations/{id})."
        if not destination.is_active
        else "Wait for the vendor to recover (GET /api/v1/destinations/{id}/health), or test the connection.",
    )
    flag = CHANNEL_FLAGS.get(channel)
    flag_on = flag is None or flag_active_for(flag, actor)
    result.add(
        "channel_flag",
        flag_on,
        f"{channel} campaigns are enabled for you."
        if flag_on
        else f"{channel} campaigns are not enabled for you (flag {flag!r}).",
        "Ask an admin to add you to the flag's pilot group; GET /api/v1/flags/ lists what is on for you.",
    )
    quota = quota_status(actor, QUOTA) if actor.user is not None else None
    room = quota is None or quota.remaining > 0
    result.add(
        "quota",
        room,
        "No activation quota applies."
        if quota is None
        else f"{quota.used} of {quota.limit} activations used this {quota.period}.",
        f"Wait until the quota resets ({quota.resets_at:%Y-%m-%d %H:%M} UTC) or ask an admin to raise it."
        if quota is not None
        else "",
    )
    if campaign.schedule_at is not None:
        problems = checks.schedule_problems(campaign.environment, campaign.schedule_at, now=now)
        scheduling = flag_active_for(SCHEDULING_FLAG, actor) if actor.user is not None else True
        message = (
            problems[0]["message"]
            if problems
            else f"Scheduled for {windows.describe_moment(campaign.environment, campaign.schedule_at)}."
        )
        if not scheduling:
            message = f"Scheduling campaigns is not enabled for you (flag {SCHEDULING_FLAG!r})."
        result.add(
            "schedule",
            not problems and scheduling,
            message,
            problems[0]["hint"]
            if problems
            else "Leave schedule_at empty to send when activated, or ask an admin for the flag.",
        )
    later = windows.run_at(campaign.environment, "campaign.activate", now)
    in_window = later is None or campaign.schedule_at is not None
    result.add(
        "change_window",
        in_window,
        "A change window is open (or none applies)."
        if later is None
        else (
            f"Outside the change windows ({windows.describe_windows(campaign.environment)}); the next opens "
            f"{windows.describe_moment(campaign.environment, later)}."
        ),
        f"Activate from {windows.describe_moment(campaign.environment, later)}, or schedule the campaign inside a "
        "window."
        if later
        else "",
    )
    skipped = ", ".join(
        f"{reason.replace('_', ' ')} {count:,}" for reason, count in sorted(estimate["skipped"].items())
    )
    result.add(
        "recipient_estimate",
        estimate["recipients"] > 0,
        f"About {estimate['recipients']:,} recipients" + (f" (skipped: {skipped})." if skipped else "."),
        "Nobody can be sent to: check the audience's waterfall (consent, suppressions, restrictions) and the "
        "frequency cap.",
    )
    return result
