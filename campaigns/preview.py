"""The payload preview: the exact request(s) a destination's adapter would send for a few
sample members — of an audience (a members push) or of a campaign (a send) — method, URL,
headers with secrets redacted, body, batch size; masked unless the caller may see PII.

Built by the adapter code that sends (integrations/destinations/preview.py records its
requests instead of sending them), from the batch the send job builds
(campaigns/sending/runner.py `batch_payload`), so a marketer and an engineer agree on what
leaves before anything does. A read: nothing is sent, nothing is written but the audit of
an unmasked preview.
"""

from __future__ import annotations

from typing import Any

from audiences.definitions.selectors import audience_in_environment
from audiences.models import Membership, Profile
from audiences.profiles.pii import mask_pii
from audiences.profiles.selectors import profile_pii_decision
from audiences.profiles.services import profile_pii_read_record
from campaigns.definitions.selectors import campaign_in_environment
from campaigns.sending.runner import RECIPIENT_FIELDS, batch_payload, batch_size, reference_of
from governance import policy
from governance.actors import Actor
from integrations import adapters
from integrations.destinations.errors import DestinationNotFound
from integrations.destinations.preview import capture
from integrations.models import Destination
from marketerapi.problems import InvalidInput

MAX_SAMPLE = 20


def _invalid(pointer: str, message: str, hint: str) -> InvalidInput:
    return InvalidInput(
        message, hint=hint, errors=[{"pointer": pointer, "code": "invalid", "message": message, "hint": hint}]
    )


def _members(version_id: int | None, sample: int) -> list[dict[str, Any]]:
    if version_id is None:
        return []
    ids = Membership.objects.filter(version_id=version_id).order_by("profile_id").values("profile_id")[:sample]
    return list(Profile.objects.filter(pk__in=ids).order_by("pk").values("pk", *RECIPIENT_FIELDS))


def destination_preview(
    *, actor: Actor, destination_id: int, audience: int | None = None, campaign: int | None = None, sample: int = 5
) -> dict[str, Any]:
    """What the destination would receive for `sample` members of the audience or campaign."""
    policy.require(actor, "destination.preview")
    destination = (
        Destination.objects.select_related("environment")
        .filter(environment=actor.environment, pk=destination_id)
        .first()
    )
    if destination is None:
        raise DestinationNotFound(f"No destination {destination_id} in {actor.environment.slug}.")
    if (audience is None) == (campaign is None):
        raise _invalid("", "Send either `audience` or `campaign`.", 'e.g. {"campaign": 7, "sample": 5}.')
    if not isinstance(sample, int) or isinstance(sample, bool) or not 1 <= sample <= MAX_SAMPLE:
        raise _invalid("/sample", f"`sample` must be 1–{MAX_SAMPLE}.", "Preview a few members, e.g. 5.")
    pii = profile_pii_decision(actor=actor)
    cls = adapters.get(destination.adapter)
    if campaign is not None:
        target = campaign_in_environment(actor.environment, campaign)
        version_id = target.version_id or target.audience.live_version_id
        profiles = _members(version_id, sample)
        shown = profiles if pii.allowed else [mask_pii(p) for p in profiles]
        target.destination = destination
        payload = batch_payload(target, shown)
        operation = "send"
        size: int | None = batch_size(target)
        requests = capture(destination, lambda adapter: adapter.send(payload), reference=reference_of(target.pk, 1))
    else:
        target_audience = audience_in_environment(actor.environment, int(audience or 0))
        profiles = _members(target_audience.live_version_id, sample)
        shown = profiles if pii.allowed else [mask_pii(p) for p in profiles]
        members = [{k: v for k, v in p.items() if k != "pk"} for p in shown]
        operation = "members"
        size = (
            int(getattr(cls, "batch_sizes", {}).get("members", 0) or (destination.config or {}).get("batch_size") or 0)
            or None
        )
        requests = capture(destination, lambda adapter: adapter.push_members(members, []), reference="preview")
    if pii.allowed and profiles:
        read = list(Profile.objects.filter(pk__in=[p["pk"] for p in profiles]).only("pk", "external_id"))
        profile_pii_read_record(actor=actor, profiles=read, decision=pii)
    return {
        "destination": {"id": destination.pk, "name": destination.name, "adapter": destination.adapter},
        "operation": operation,
        "sample": len(profiles),
        "batch_size": size,
        "pii_masked": not pii.allowed,
        "requests": requests,
    }
