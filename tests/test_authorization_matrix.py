"""Who may call what: every route of /api/v1/ × every method × every persona × whose object.

The routes come from the URL configuration, not from this file: a route (or a method of
it) without an entry in MATRIX fails `test_every_route_and_method_has_an_entry`, which
prints a template to fill in. An entry says what each persona gets (PRODUCT.md §4) for

- `own`       an object of the persona: their team's audience (team-less personas: the
              growth team's), their own token or approval request; for objects nobody
              owns (profiles, jobs, webhooks, destinations, dead letters, flags) the one
              of the persona's environment;
- `foreign`   another team's audience (retention's for the growth team, growth's for
              everyone else), a colleague's token or approval request, in the same
              environment — only for objects that have an owner;
- `other_env` the same kind of object in another environment (pilot; the tokens are
              sandbox tokens): always 404 for whoever may use the route at all. The test
              also checks that it answers exactly as for an id that does not exist, so
              ids of other environments never leak.

Routes without a path parameter have only `own`. Each call runs in a savepoint that is
rolled back, so every persona meets the same world, built once for the whole module.

A refusal is checked as the caller meets it, not only by its status: its problem `code`
(`permission_denied` for a 403, the kind's `<kind>_not_found` for a 404, unless the entry
says otherwise in `codes`), and, for a refused change (a route whose `action` is unsafe in
governance/policy/actions.py), exactly one audit event: outcome `denied`, the action, the
caller, the environment — whichever check said no.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from rest_framework.test import APIClient
from waffle.models import Flag

from audiences.models import Audience, Export
from campaigns.models import ReviewItem
from governance.access.objectperms import share
from governance.models import ApiToken, ApprovalRequest, AuditEvent, Environment, OutboxEvent
from governance.policy.actions import ACTIONS
from integrations.models import DeadLetter, Destination
from tests import routes
from tests.conftest import PERSONAS
from tests.factories import (
    ApiTokenFactory,
    ApprovalRequestFactory,
    AudienceFactory,
    AudienceVersionFactory,
    CampaignFactory,
    DestinationFactory,
    JobFactory,
    ProfileFactory,
    UserFactory,
    WebhookSubscriptionFactory,
)
from tests.routes import METHODS, UNSAFE, dotted

MATRIX_PERSONAS = (
    "analyst",
    "operator",
    "operator2",
    "approver",
    "compliance",
    "developer",
    "admin",
    "outsider",
    "nobody",
)
OWN, FOREIGN, OTHER_ENV = "own", "foreign", "other_env"
MISSING_ID = "987654321"


# --- expectations ------------------------------------------------------------------------------


def statuses(default: int, **by_persona: int) -> dict[str, int]:
    """The status each persona gets: `default`, except those named."""
    unknown = set(by_persona) - set(MATRIX_PERSONAS)
    assert not unknown, f"unknown persona(s) {unknown}"
    return {p: by_persona.get(p, default) for p in MATRIX_PERSONAS}


def roles(ok: int) -> dict[str, int]:
    """Every role may; a signed-in person without a role may not."""
    return statuses(ok, nobody=403)


def integrators(ok: int) -> dict[str, int]:
    """Developers and admins (tokens, destinations, webhooks, ingestion: PRODUCT.md §4)."""
    return statuses(403, developer=ok, admin=ok)


def hidden(*refused: str) -> dict[str, int]:
    """An object of another environment: 404, except for personas refused by role (403)
    before anything is looked up — their answer does not depend on the id either."""
    return statuses(404, **dict.fromkeys(refused, 403))


ROLELESS = ("nobody",)
NOT_INTEGRATORS = ("analyst", "operator", "operator2", "approver", "compliance", "outsider", "nobody")
# Who has a role but none that fills a step of the matrix's requests (approver; developer or admin).
VOTERS_NOT_ELIGIBLE = ("analyst", "operator", "operator2", "compliance", "outsider")


@dataclass(frozen=True)
class Route:
    own: dict[str, int]
    foreign: dict[str, int] | None = None
    other_env: dict[str, int] | None = None
    # The JSON body, or a function of the call (Call) that returns it.
    body: Any = None
    query: str = ""
    note: str = ""
    # The policy action a change asks for (every route with an unsafe method names one); a
    # refusal of an unsafe action is audited as denied under it, or under one of `audited`.
    action: str | None = None
    audited: tuple[str, ...] = ()
    # Where a refusal is audited: the caller's environment (the tokens are sandbox tokens),
    # or the one the change was meant for.
    audited_in: tuple[str, ...] = ("sandbox",)
    # ownership → persona → the problem code of a refusal, where it is not the default.
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    # Which of an object's variants the route needs (campaigns: "" a draft that is ready,
    # "active" a sending one, "paused"): the builder of the path parameter reads it.
    variant: str = ""

    def ownerships(self) -> list[str]:
        return [o for o, e in ((OWN, self.own), (FOREIGN, self.foreign), (OTHER_ENV, self.other_env)) if e is not None]

    def expected(self, ownership: str) -> dict[str, int]:
        return {OWN: self.own, FOREIGN: self.foreign, OTHER_ENV: self.other_env}[ownership]  # type: ignore[return-value]

    def code(self, key: str, ownership: str, persona: str, status: int) -> str | None:
        """The problem code a refusal with `status` must carry (None: not a refusal)."""
        if status < 400:
            return None
        if persona in self.codes.get(ownership, {}) and status == 403:
            return self.codes[ownership][persona]
        if status == 404:
            return NOT_FOUND[_PARAM.findall(key)[0]]
        return {401: "not_authenticated", 403: "permission_denied"}[status]


def codes(code: str, *personas: str) -> dict[str, str]:
    """These personas' refusals carry `code` (everyone's with a role, when none are named)."""
    return dict.fromkeys(personas or [p for p in MATRIX_PERSONAS if p not in ROLELESS], code)


# {parameter} of a path → the code of its 404 (tokens answer the generic `not_found`).
NOT_FOUND = {
    "audience_id": "audience_not_found",
    "token_id": "not_found",
    "approval_id": "approval_not_found",
    "profile_id": "profile_not_found",
    "webhook_id": "webhook_not_found",
    "dead_letter_id": "dead_letter_not_found",
    "destination_id": "destination_not_found",
    "job_id": "job_not_found",
    "export_id": "export_not_found",
    "name": "flag_not_found",
    "campaign_id": "campaign_not_found",
    "item_id": "review_item_not_found",
}


def _now() -> str:
    return timezone.now().isoformat()


def _audience_body(call: Call) -> dict[str, Any]:
    return {
        "name": f"matrix {call.persona}",
        "owner_team": call.team or "growth",
        "channel": "email",
        "purpose": "winback",
        "description": "Created by the authorization matrix.",
        "rules": {"attr": "region", "op": "eq", "value": "EU"},
    }


RULES = {"attr": "region", "op": "eq", "value": "EU"}


def _campaign_body(call: Call) -> dict[str, Any]:
    team = call.team or "growth"
    return {
        "name": f"matrix {call.persona}",
        "owner_team": team,
        "purpose": "winback",
        "channel": "email",
        "audience": call.world.audiences[("sandbox", team)],
        "destination": call.world.objects[("destination", "sandbox")],
        "assets": {"subject": "Hi {{first_name}}", "body": "Hello", "sender": "news@example.test"},
    }


# "METHOD /api/v1/path/{parameter}" → who gets what. Keep the order of the URL configuration.
MATRIX: dict[str, Route] = {
    # --- me, tokens, flags (governance/api) ---
    "GET /api/v1/me": Route(own=statuses(200)),
    "GET /api/v1/me/quotas": Route(own=statuses(200)),
    "GET /api/v1/me/requests": Route(own=roles(200)),  # like the audit log: any role, own rows
    "GET /api/v1/metrics/adoption": Route(own=statuses(403, approver=200, admin=200)),
    "GET /api/v1/metrics/policy": Route(own=statuses(403, approver=200, admin=200)),
    "POST /api/v1/metrics/policy/simulate": Route(
        own=statuses(403, approver=200, admin=200),
        body={"kind": "rate_limit", "rate_class": "write", "limit": 5},
        action="metrics.view",
    ),
    "POST /api/v1/metrics/policy/proposals": Route(
        own=statuses(403, admin=202),
        body={"kind": "approval_policy", "action": "audience.publish", "steps": [["approver"]]},
        action="approval_policy.propose",
    ),
    "GET /api/v1/tokens": Route(own=integrators(200)),
    "POST /api/v1/tokens": Route(
        own=integrators(201), body={"name": "matrix", "scopes": ["read"]}, action="token.create"
    ),
    "GET /api/v1/tokens/{token_id}": Route(
        own=integrators(200),
        # A colleague's token: only admins see every token; a developer answers for their own.
        foreign=statuses(403, developer=404, admin=200),
        other_env=hidden(*NOT_INTEGRATORS),
    ),
    "DELETE /api/v1/tokens/{token_id}": Route(
        action="token.revoke",
        own=integrators(204),
        foreign=statuses(403, developer=404, admin=204),
        other_env=hidden(*NOT_INTEGRATORS),
    ),
    "GET /api/v1/flags": Route(own=statuses(200), note="anyone signed in sees the flags and whether they have them"),
    "GET /api/v1/flags/{name}": Route(own=statuses(200)),
    "PATCH /api/v1/flags/{name}": Route(own=statuses(403, admin=200), body={"everyone": True}, action="flag.change"),
    # --- approvals ---
    "GET /api/v1/approvals": Route(own=roles(200)),
    "GET /api/v1/approvals/{approval_id}": Route(own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS)),
    "POST /api/v1/approvals/{approval_id}/approve": Route(
        # Never your own request; the colleague's asks for an approver, then a developer or admin.
        action="approval.vote",
        audited=("approval.approve",),
        codes={OWN: codes("self_approval"), FOREIGN: codes("not_eligible", *VOTERS_NOT_ELIGIBLE)},
        own=statuses(403),
        foreign=statuses(403, approver=200, developer=200, admin=200),
        other_env=hidden(*ROLELESS),
        body={"comment": "matrix"},
    ),
    "POST /api/v1/approvals/{approval_id}/reject": Route(
        action="approval.vote",
        audited=("approval.reject",),
        codes={OWN: codes("self_approval"), FOREIGN: codes("not_eligible", *VOTERS_NOT_ELIGIBLE)},
        own=statuses(403),
        foreign=statuses(403, approver=200, developer=200, admin=200),
        other_env=hidden(*ROLELESS),
        body={"comment": "matrix"},
    ),
    "POST /api/v1/approvals/{approval_id}/cancel": Route(
        # Only the requester cancels (PRODUCT.md §5), admins included.
        action="approval.cancel",
        codes={FOREIGN: codes("not_requester")},
        own=roles(200),
        foreign=statuses(403),
        other_env=hidden(*ROLELESS),
    ),
    # --- audit trail ---
    "GET /api/v1/audit-events": Route(own=roles(200)),
    "GET /api/v1/audit-events/export": Route(own=roles(200)),
    "GET /api/v1/audit-events/verify": Route(own=roles(200)),
    # --- profiles, ingestion, consent ---
    "GET /api/v1/profiles": Route(own=roles(200)),
    "POST /api/v1/profiles/bulk": Route(
        own=integrators(200),
        body={"profiles": [{"external_id": "matrix-new", "region": "EU"}]},
        action="profile.ingest",
    ),
    "GET /api/v1/profiles/{profile_id}": Route(own=roles(200), other_env=hidden(*ROLELESS)),
    "GET /api/v1/profiles/{profile_id}/consent-history": Route(own=roles(200), other_env=hidden(*ROLELESS)),
    "POST /api/v1/profile-events/bulk": Route(
        action="profile_event.ingest",
        own=integrators(200),
        body=lambda call: {"events": [{"external_id": "matrix-1", "type": "purchase", "occurred_at": _now()}]},
    ),
    "POST /api/v1/consent/sync": Route(
        action="consent.sync",
        own=integrators(200),
        body=lambda call: {
            "updates": [
                {
                    "external_id": "matrix-1",
                    "channel": "email",
                    "status": "granted",
                    "source": "signup_form",
                    "captured_at": _now(),
                }
            ]
        },
    ),
    # --- audiences ---
    "GET /api/v1/audiences": Route(own=roles(200)),
    "POST /api/v1/audiences": Route(
        # Developers author only in a sandbox (the matrix's tokens are sandbox tokens).
        own=statuses(403, operator=201, operator2=201, outsider=201, developer=201, admin=201),
        body=_audience_body,
        action="audience.create",
    ),
    "POST /api/v1/audiences/preview": Route(
        own=roles(200), body={"rules": RULES, "channel": "email"}, action="audience.preview"
    ),
    "GET /api/v1/audiences/{audience_id}": Route(own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS)),
    "PATCH /api/v1/audiences/{audience_id}": Route(
        action="audience.edit",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
        body={"purpose": "matrix"},
    ),
    "DELETE /api/v1/audiences/{audience_id}": Route(
        # The fixtures are published: deleting archives them (sandbox: no approval). A refusal
        # before the audience is read is a refused delete; after, a refused archive.
        action="audience.delete",
        audited=("audience.archive",),
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
    ),
    "POST /api/v1/audiences/{audience_id}/preview": Route(
        own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS), action="audience.preview"
    ),
    "POST /api/v1/audiences/{audience_id}/validate": Route(
        own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS), action="audience.view"
    ),
    "POST /api/v1/audiences/{audience_id}/share": Route(
        action="audience.share",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
        body={"team": "partners", "level": "change"},
    ),
    "DELETE /api/v1/audiences/{audience_id}/share": Route(
        action="audience.share",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
        body={"team": "partners"},
    ),
    "POST /api/v1/audiences/{audience_id}/transfer": Route(
        # The owning team or an admin hands it to any team; a share of change may not (issue 12).
        action="audience.transfer",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
        body={"team": "partners"},
    ),
    "POST /api/v1/audiences/{audience_id}/promote": Route(
        # Into production: whoever may create audiences there (not developers: sandbox only).
        action="audience.promote",
        audited=("audience.create",),
        audited_in=("sandbox", "production"),  # creating the copy is refused in production
        own=statuses(403, operator=201, operator2=201, outsider=201, admin=201),
        foreign=statuses(403, operator=201, operator2=201, outsider=201, admin=201),
        other_env=hidden(*ROLELESS),
        # The copy belongs to the caller's team: copying another team's work is how one builds on it.
        body=lambda call: {"environment": "production", "owner_team": call.team or "growth"},
    ),
    "POST /api/v1/audiences/{audience_id}/copy": Route(
        # A draft of one's own team from any audience one sees: whoever may create audiences here.
        action="audience.copy",
        own=statuses(403, operator=201, operator2=201, outsider=201, developer=201, admin=201),
        foreign=statuses(403, operator=201, operator2=201, outsider=201, developer=201, admin=201),
        other_env=hidden(*ROLELESS),
        body=lambda call: {"team": call.team} if call.team else {"name": f"matrix copy {call.persona}"},
    ),
    "GET /api/v1/suppressions": Route(own=roles(200)),
    "POST /api/v1/suppressions": Route(
        action="suppression.change",
        own=statuses(403, operator=201, operator2=201, outsider=201, developer=201, admin=201),
        body={"name": "matrix-list", "description": "made by the matrix"},
    ),
    "POST /api/v1/audiences/{audience_id}/publish": Route(
        action="audience.publish",
        own=statuses(403, operator=202, operator2=202, outsider=202, developer=202, admin=202),
        foreign=statuses(403, admin=202),
        other_env=hidden(*ROLELESS),
        body={},
    ),
    "GET /api/v1/audiences/{audience_id}/versions": Route(
        own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS)
    ),
    "POST /api/v1/audiences/{audience_id}/rollback": Route(
        action="audience.rollback",
        own=statuses(403, operator=202, operator2=202, outsider=202, developer=202, admin=202),
        foreign=statuses(403, admin=202),
        other_env=hidden(*ROLELESS),
        body={"version": 1},
    ),
    "GET /api/v1/audiences/{audience_id}/memberships": Route(
        own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS)
    ),
    # --- exports: masked for analysts, operators, compliance reviewers, admins (PRODUCT.md §4);
    # each sees their own, compliance reviewers and admins everyone's; only who ran one downloads it.
    "GET /api/v1/exports": Route(own=roles(200)),
    "POST /api/v1/exports": Route(
        action="export.create",
        own=statuses(202, approver=403, developer=403, nobody=403),
        body=lambda call: {"audience": call.world.audiences[("sandbox", call.team or "growth")], "fields": ["email"]},
    ),
    "GET /api/v1/exports/{export_id}": Route(
        own=roles(200),
        foreign=statuses(404, compliance=200, admin=200, nobody=403),
        other_env=hidden(*ROLELESS),
    ),
    "GET /api/v1/exports/{export_id}/download": Route(
        own=roles(200),
        foreign=statuses(404, compliance=403, admin=403, nobody=403),
        other_env=hidden(*ROLELESS),
        codes={FOREIGN: codes("export_not_yours", "compliance", "admin")},
    ),
    # --- domain events, webhooks, dead letters ---
    "GET /api/v1/events": Route(own=roles(200)),
    "GET /api/v1/webhooks": Route(own=integrators(200)),
    "POST /api/v1/webhooks": Route(
        own=integrators(201),
        body={"url": "http://127.0.0.1:9/hook", "event_types": ["audience.published"]},
        action="webhook.create",
    ),
    "GET /api/v1/webhooks/{webhook_id}": Route(own=integrators(200), other_env=hidden(*NOT_INTEGRATORS)),
    "PATCH /api/v1/webhooks/{webhook_id}": Route(
        own=integrators(200),
        other_env=hidden(*NOT_INTEGRATORS),
        body={"description": "matrix"},
        action="webhook.update",
    ),
    "DELETE /api/v1/webhooks/{webhook_id}": Route(
        own=integrators(204), other_env=hidden(*NOT_INTEGRATORS), action="webhook.delete"
    ),
    "GET /api/v1/webhooks/{webhook_id}/deliveries": Route(own=integrators(200), other_env=hidden(*NOT_INTEGRATORS)),
    "GET /api/v1/dead-letters": Route(own=integrators(200)),
    "POST /api/v1/dead-letters/{dead_letter_id}/replay": Route(
        own=integrators(200), other_env=hidden(*NOT_INTEGRATORS), action="dead_letter.replay"
    ),
    "POST /api/v1/dead-letters/{dead_letter_id}/discard": Route(
        own=integrators(200), other_env=hidden(*NOT_INTEGRATORS), action="dead_letter.discard"
    ),
    # --- destinations, jobs, status ---
    "GET /api/v1/destinations": Route(own=integrators(200)),
    "POST /api/v1/destinations": Route(
        action="destination.create",
        own=integrators(201),
        body=lambda call: {
            "name": "matrix-drop",
            "adapter": "file",
            "config": {"directory": call.world.drop_directory, "format": "jsonl"},
        },
    ),
    "GET /api/v1/destinations/{destination_id}": Route(own=integrators(200), other_env=hidden(*NOT_INTEGRATORS)),
    "PATCH /api/v1/destinations/{destination_id}": Route(
        own=integrators(200), other_env=hidden(*NOT_INTEGRATORS), body={"is_active": False}, action="destination.update"
    ),
    "POST /api/v1/destinations/{destination_id}/test": Route(
        own=integrators(200), other_env=hidden(*NOT_INTEGRATORS), action="destination.test"
    ),
    "GET /api/v1/destinations/{destination_id}/health": Route(own=integrators(200), other_env=hidden(*NOT_INTEGRATORS)),
    "GET /api/v1/jobs/{job_id}": Route(own=roles(200), other_env=hidden(*ROLELESS)),
    "GET /api/v1/status": Route(own=roles(200)),
    # --- campaigns (the team's campaign; another team's; pilot's) ---
    "GET /api/v1/campaigns": Route(own=roles(200)),
    "POST /api/v1/campaigns": Route(
        # Developers author only in a sandbox (the matrix's tokens are sandbox tokens).
        own=statuses(403, operator=201, operator2=201, outsider=201, developer=201, admin=201),
        body=_campaign_body,
        action="campaign.create",
    ),
    "GET /api/v1/campaigns/{campaign_id}": Route(own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS)),
    "PATCH /api/v1/campaigns/{campaign_id}": Route(
        action="campaign.edit",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
        body={"purpose": "matrix"},
    ),
    "DELETE /api/v1/campaigns/{campaign_id}": Route(
        action="campaign.delete",
        own=statuses(403, operator=204, operator2=204, outsider=204, developer=204, admin=204),
        foreign=statuses(403, admin=204),
        other_env=hidden(*ROLELESS),
    ),
    "POST /api/v1/campaigns/{campaign_id}/share": Route(
        action="campaign.share",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
        body={"team": "partners", "level": "change"},
    ),
    "GET /api/v1/campaigns/{campaign_id}/readiness": Route(
        own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS)
    ),
    "POST /api/v1/campaigns/{campaign_id}/activate": Route(
        action="campaign.activate",
        own=statuses(403, operator=202, operator2=202, outsider=202, developer=202, admin=202),
        foreign=statuses(403, admin=202),
        other_env=hidden(*ROLELESS),
    ),
    "POST /api/v1/campaigns/{campaign_id}/pause": Route(
        action="campaign.pause",
        variant="active",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
    ),
    "POST /api/v1/campaigns/{campaign_id}/resume": Route(
        action="campaign.resume",
        variant="paused",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
    ),
    "POST /api/v1/campaigns/{campaign_id}/cancel": Route(
        action="campaign.cancel",
        variant="active",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
    ),
    "GET /api/v1/campaigns/{campaign_id}/sends": Route(
        own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS), variant="active"
    ),
    "POST /api/v1/destinations/{destination_id}/preview": Route(
        # Everyone with a role (the flag is on in the matrix's world): marketers and engineers agree on it.
        own=roles(200),
        other_env=hidden(*ROLELESS),
        body=lambda call: {"campaign": call.world.campaigns[("sandbox", "growth", "")], "sample": 1},
        action="destination.preview",
    ),
    # --- the manual review queue (the item of the team's campaign; another team's; pilot's) ---
    "GET /api/v1/review-items": Route(own=roles(200)),
    "POST /api/v1/review-items/{item_id}/retry": Route(
        action="review_item.retry",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
    ),
    "POST /api/v1/review-items/{item_id}/cancel": Route(
        action="review_item.cancel",
        own=statuses(403, operator=200, operator2=200, outsider=200, developer=200, admin=200),
        foreign=statuses(403, admin=200),
        other_env=hidden(*ROLELESS),
    ),
    "GET /api/v1/review-items/{item_id}/payload": Route(
        own=roles(200), foreign=roles(200), other_env=hidden(*ROLELESS)
    ),
}


# Where the API answers otherwise than MATRIX says it should: (route, persona, ownership) →
# (what it answers now, why that is wrong). MATRIX keeps the right answer; the test checks
# that these cells still answer as listed, so a fix fails here until its line is removed.
KNOWN_GAPS: dict[tuple[str, str, str], tuple[int, str]] = {}


def test_known_gaps_name_real_cells():
    for (key, persona, ownership), (status, reason) in KNOWN_GAPS.items():
        assert key in MATRIX, f"KNOWN_GAPS names {key}, which has no MATRIX entry"
        route = MATRIX[key]
        assert ownership in route.ownerships(), f"KNOWN_GAPS: {key} has no {ownership} column"
        assert route.expected(ownership)[persona] != status, f"KNOWN_GAPS: {key} {persona} {ownership} is no gap"
        assert reason


# --- routes from the URL configuration -------------------------------------------------------------

_PARAM = re.compile(r"\{(\w+)\}")


def api_routes() -> dict[str, str]:
    """ "METHOD /api/v1/…" → the view's dotted name, for every route and method of the API."""
    return {key: dotted(view) for key, view in routes.api_routes(METHODS).items()}


def _template(key: str, view: str) -> str:
    params = _PARAM.findall(key)
    lines = [f'    "{key}": Route(  # {view}', "        own=statuses(403, admin=200),"]
    if params:
        kind = params[0]
        if kind in OWNED_KINDS:
            lines.append("        foreign=statuses(403, admin=200),")
        lines.append("        other_env=hidden(*ROLELESS),")
        if kind not in PARAM_BUILDERS:
            lines.append(f"        # and teach World.params how to fill {{{kind}}} (PARAM_BUILDERS)")
    if key.split(" ", 1)[0] in ("POST", "PUT", "PATCH"):
        lines.append("        body={...},  # a body that succeeds for those allowed")
    lines.append("    ),")
    return "\n".join(lines)


def test_every_route_and_method_has_an_entry():
    routes = api_routes()
    missing = sorted(set(routes) - set(MATRIX))
    stale = sorted(set(MATRIX) - set(routes))
    message = ""
    if missing:
        message += (
            "These API routes have no entry in MATRIX (tests/test_authorization_matrix.py), so nobody checks who "
            "may call them:\n"
            + "".join(f"  {key}   ({routes[key]})\n" for key in missing)
            + "Add one entry per route and method, saying what each persona gets (PRODUCT.md §4), e.g.:\n"
            + "\n".join(_template(key, routes[key]) for key in missing)
            + "\n"
        )
    if stale:
        message += "These entries of MATRIX name routes that no longer exist; remove or rename them:\n" + "".join(
            f"  {key}\n" for key in stale
        )
    unnamed = sorted(k for k in set(routes) & set(MATRIX) if k.split(" ", 1)[0] in UNSAFE and not MATRIX[k].action)
    if unnamed:
        message += (
            "These entries of MATRIX change state but name no policy `action`, so their refusals' audit rows "
            "go unchecked: " + ", ".join(unnamed) + "\n"
        )
    unknown_actions = sorted({r.action for r in MATRIX.values() if r.action} - set(ACTIONS))
    if unknown_actions:
        message += "These actions of MATRIX are not in governance/policy/actions.py: " + ", ".join(unknown_actions)
    unknown_params = sorted({p for key in routes for p in _PARAM.findall(key)} - set(PARAM_BUILDERS))
    if unknown_params:
        message += (
            "These path parameters have no builder in PARAM_BUILDERS, so the matrix cannot fill them: "
            + ", ".join(unknown_params)
            + "\n"
        )
    assert not message, message


# --- the world: personas, tokens and one object of each kind per ownership --------------------------------


TEAM_OF = {
    name: next((g for g in groups if g in ("growth", "retention", "other")), None) for name, groups in PERSONAS.items()
}


@dataclass
class World:
    sandbox: Environment
    pilot: Environment
    users: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    own_tokens: dict[str, int] = field(default_factory=dict)
    pilot_tokens: dict[str, int] = field(default_factory=dict)
    colleague_token: int = 0
    audiences: dict[tuple[str, str], int] = field(default_factory=dict)  # (environment, team) → id
    own_approvals: dict[str, int] = field(default_factory=dict)
    colleague_approval: int = 0
    pilot_approval: int = 0
    objects: dict[tuple[str, str], Any] = field(default_factory=dict)  # (kind, environment) → id or name
    campaigns: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (environment, team, variant) → id
    review_items: dict[tuple[str, str], int] = field(default_factory=dict)  # (environment, team) → id
    drop_directory: str = ""
    exports: dict[tuple[str, str], int] = field(default_factory=dict)  # (environment, persona) → id


@dataclass(frozen=True)
class Call:
    world: World
    persona: str
    ownership: str
    variant: str = ""

    @property
    def team(self) -> str | None:
        return TEAM_OF[self.persona]


def _token(user: Any, environment: Environment, name: str) -> tuple[ApiToken, str]:
    # The matrix makes hundreds of calls per persona within a minute; rate limits are
    # tested in tests/governance/test_ratelimit.py.
    limits = {"read": 100_000, "write": 100_000, "preview": 100_000, "bulk": 100_000}
    token = ApiTokenFactory(user=user, environment=environment, name=name, rate_limits=limits)
    return token, token.secret


def _published_audience(environment: Environment, team: Group, partners: Group) -> Audience:
    """The team's published audience (versions 1 and 2, so a rollback has somewhere to go),
    which the partners team may view."""
    audience = AudienceFactory(environment=environment, name=f"{team.name} winback", owner_team=team, rules=RULES)
    AudienceVersionFactory(audience=audience)
    AudienceVersionFactory(audience=audience, live=True)
    share(audience, partners, "view")
    return audience


def _approval(environment: Environment, requester: Any) -> ApprovalRequest:
    return ApprovalRequestFactory(environment=environment, requester=requester, target_id="0")


def build_world(tmp_dir: str) -> World:
    sandbox, pilot = Environment.objects.get(slug="sandbox"), Environment.objects.get(slug="pilot")
    world = World(sandbox=sandbox, pilot=pilot, drop_directory=tmp_dir)
    teams = {name: Group.objects.get_or_create(name=name)[0] for name in ("growth", "retention", "other", "partners")}
    for persona in MATRIX_PERSONAS:
        user = UserFactory(username=f"m-{persona}", groups=PERSONAS[persona])
        world.users[persona] = user
        _, world.secrets[persona] = _token(user, sandbox, "matrix-auth")
        world.own_tokens[persona] = _token(user, sandbox, "matrix-own")[0].pk
        world.pilot_tokens[persona] = _token(user, pilot, "matrix-pilot")[0].pk
        world.own_approvals[persona] = _approval(sandbox, user).pk
    colleague = UserFactory(username="m-colleague-dev", groups=["developer", "growth"])
    world.colleague_token = _token(colleague, sandbox, "colleague")[0].pk
    requester = UserFactory(username="m-colleague-op", groups=["campaign_operator", "growth"])
    world.colleague_approval = _approval(sandbox, requester).pk
    world.pilot_approval = _approval(pilot, requester).pk
    for environment, names in ((sandbox, ("growth", "retention", "other")), (pilot, ("growth",))):
        for name in names:
            audience = _published_audience(environment, teams[name], teams["partners"])
            world.audiences[(environment.slug, name)] = audience.pk
    for environment in (sandbox, pilot):
        slug = environment.slug
        world.objects[("profile", slug)] = ProfileFactory(environment=environment, external_id="matrix-1").pk
        hook = WebhookSubscriptionFactory(
            environment=environment, url="http://127.0.0.1:9/hook", event_types=["audience.published"]
        )
        world.objects[("webhook", slug)] = hook.pk
        event = OutboxEvent.objects.create(
            environment=environment, type="audience.published", aggregate_type="audiences.audience", aggregate_id="1"
        )
        world.objects[("dead_letter", slug)] = DeadLetter.objects.create(
            environment=environment,
            kind="outbox_dispatch",
            reference_id=str(event.pk),
            payload={"event_id": str(event.event_id)},
            attempts=8,
            last_error="connection refused",
        ).pk
        world.objects[("destination", slug)] = DestinationFactory(
            environment=environment, name="drop", config={"directory": tmp_dir, "format": "jsonl"}
        ).pk
        world.objects[("job", slug)] = JobFactory(environment=environment).pk
    for environment, names in ((sandbox, ("growth", "retention", "other")), (pilot, ("growth",))):
        destination = Destination.objects.get(pk=world.objects[("destination", environment.slug)])
        for name in names:
            member = ProfileFactory(environment=environment, external_id=f"matrix-c-{name}", consent="granted")
            audience = AudienceFactory(
                environment=environment, name=f"{name} campaign audience", owner_team=teams[name], rules=RULES
            )
            AudienceVersionFactory(audience=audience, memberships=[member], live=True)
            for variant in ("", "active", "paused", "partially_succeeded"):
                campaign = CampaignFactory(
                    environment=environment,
                    name=f"{name} campaign {variant or 'draft'}",
                    audience=audience,
                    owner_team=teams[name],
                    destination=destination,
                    state=variant or "draft",
                    version=audience.live_version if variant else None,
                )
                share(campaign, teams["partners"], "view")
                world.campaigns[(environment.slug, name, variant)] = campaign.pk
            world.review_items[(environment.slug, name)] = ReviewItem.objects.create(
                environment=environment, campaign=campaign, destination=destination, recipients=1, why="matrix"
            ).pk
    Flag.objects.create(name="matrix_flag", everyone=None)
    for persona, user in [*world.users.items(), ("colleague", requester)]:
        world.exports[("sandbox", persona)] = _ready_export(sandbox, world.audiences[("sandbox", "growth")], user)
    world.exports[("pilot", "colleague")] = _ready_export(pilot, world.audiences[("pilot", "growth")], requester)
    Flag.objects.update_or_create(name="destination_payload_preview", defaults={"everyone": True})
    return world


def _ready_export(environment: Environment, audience_id: int, user: Any) -> int:
    return Export.objects.create(
        environment=environment,
        audience_id=audience_id,
        format="csv",
        fields=["external_id"],
        state="ready",
        rows=0,
        size=0,
        file_name="matrix.csv",
        created_by=user,
        expires_at=timezone.now() + timedelta(days=1),
    ).pk


def _export_param(call: Call) -> int:
    world = call.world
    return {
        OWN: world.exports[("sandbox", call.persona)],
        FOREIGN: world.exports[("sandbox", "colleague")],
        OTHER_ENV: world.exports[("pilot", "colleague")],
    }[call.ownership]


def _audience_param(call: Call) -> int:
    world, team = call.world, call.team or "growth"
    if call.ownership == OWN:
        return world.audiences[("sandbox", team)]
    if call.ownership == FOREIGN:
        return world.audiences[("sandbox", "retention" if team == "growth" else "growth")]
    return world.audiences[("pilot", "growth")]


def _token_param(call: Call) -> int:
    world = call.world
    return {
        OWN: world.own_tokens[call.persona],
        FOREIGN: world.colleague_token,
        OTHER_ENV: world.pilot_tokens[call.persona],
    }[call.ownership]


def _approval_param(call: Call) -> int:
    world = call.world
    return {
        OWN: world.own_approvals[call.persona],
        FOREIGN: world.colleague_approval,
        OTHER_ENV: world.pilot_approval,
    }[call.ownership]


def _environment_scoped(kind: str) -> Callable[[Call], Any]:
    def build(call: Call) -> Any:
        assert call.ownership != FOREIGN, f"{kind} objects have no owner: give the route no `foreign`"
        return call.world.objects[(kind, "sandbox" if call.ownership == OWN else "pilot")]

    return build


def _flag_param(call: Call) -> str:
    assert call.ownership == OWN, "flags are global: give the route only `own`"
    return "matrix_flag"


# {parameter} of a path → how to fill it for a call.
PARAM_BUILDERS: dict[str, Callable[[Call], Any]] = {
    "audience_id": _audience_param,
    "token_id": _token_param,
    "approval_id": _approval_param,
    "profile_id": _environment_scoped("profile"),
    "webhook_id": _environment_scoped("webhook"),
    "dead_letter_id": _environment_scoped("dead_letter"),
    "destination_id": _environment_scoped("destination"),
    "job_id": _environment_scoped("job"),
    "export_id": _export_param,
    "name": _flag_param,
}


def _campaign_param(call: Call) -> int:
    world, team = call.world, call.team or "growth"
    if call.ownership == OWN:
        return world.campaigns[("sandbox", team, call.variant)]
    if call.ownership == FOREIGN:
        return world.campaigns[("sandbox", "retention" if team == "growth" else "growth", call.variant)]
    return world.campaigns[("pilot", "growth", call.variant)]


def _review_item_param(call: Call) -> int:
    world, team = call.world, call.team or "growth"
    if call.ownership == OWN:
        return world.review_items[("sandbox", team)]
    if call.ownership == FOREIGN:
        return world.review_items[("sandbox", "retention" if team == "growth" else "growth")]
    return world.review_items[("pilot", "growth")]


PARAM_BUILDERS["campaign_id"] = _campaign_param
PARAM_BUILDERS["item_id"] = _review_item_param

OWNED_KINDS = frozenset({"audience_id", "token_id", "approval_id", "campaign_id", "item_id", "export_id"})


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once for the module inside a transaction that is rolled back at the end; each
    test (and each call) runs in a savepoint within it."""
    with django_db_blocker.unblock():
        with transaction.atomic():
            yield build_world(str(tmp_path_factory.mktemp("drops")))
            transaction.set_rollback(True)


# --- the calls ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int
    detail: str
    code: str | None = None
    # The audit events the call wrote: (action, outcome, actor user id, environment id).
    audits: tuple[tuple[str, str, int | None, int | None], ...] = ()


def _call(world: World, key: str, route: Route, persona: str, ownership: str, missing: bool = False) -> Outcome:
    method, template = key.split(" ", 1)
    call = Call(world, persona, ownership, route.variant)
    params = {name: (MISSING_ID if missing else PARAM_BUILDERS[name](call)) for name in _PARAM.findall(template)}
    if missing and "name" in params:
        params["name"] = "no-such-flag"
    path = template.format(**params) + (f"?{route.query}" if route.query else "")
    body = route.body(call) if callable(route.body) else route.body
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.secrets[persona]}")
    with transaction.atomic():
        last_event = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0
        response = client.generic(
            method,
            path,
            data=None if body is None else json.dumps(body),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        audits = tuple(
            AuditEvent.objects.filter(id__gt=last_event)
            .order_by("id")
            .values_list("action", "outcome", "actor_user_id", "environment_id")
        )
        # Every persona meets the same world: undo what the call changed.
        transaction.set_rollback(True)
    detail, code = "", None
    if response.status_code >= 300 and response.get("Content-Type", "").startswith("application/"):
        try:
            problem = json.loads(b"".join(response.streaming_content) if response.streaming else response.content)
            code = problem.get("code")
            detail = f"{code or ''}: {problem.get('detail', '')}"[:200]
        except (ValueError, AttributeError):
            detail = ""
    return Outcome(response.status_code, detail, code, audits)


def _refusal_mismatches(world: World, key: str, route: Route, persona: str, ownership: str, got: Outcome) -> list[str]:
    """What a refused caller meets beyond the status: the problem code, and for a refused
    change one audit event — denied, the action, the caller, the environment."""
    found = []
    expected_code = route.code(key, ownership, persona, got.status)
    if expected_code is not None and got.code != expected_code:
        found.append(f"  {persona:<10} {ownership:<9} {got.status} with code {got.code!r}, expected {expected_code!r}")
    change = key.split(" ", 1)[0] in UNSAFE and route.action is not None and ACTIONS[route.action].unsafe
    if got.status == 403 and change:
        wanted = {route.action, *route.audited}
        user = world.users[persona].pk
        places = set(Environment.objects.filter(slug__in=route.audited_in).values_list("pk", flat=True))
        denied = [a for a in got.audits if a[:3] in {(w, "denied", user) for w in wanted} and a[3] in places]
        if len(denied) != 1 or len(got.audits) != 1:
            found.append(
                f"  {persona:<10} {ownership:<9} refused change wrote {list(got.audits)}, expected one denied "
                f"{' or '.join(sorted(wanted))} event of user {user} in {' or '.join(route.audited_in)}"
            )
    return found


@pytest.mark.parametrize("key", sorted(MATRIX))
def test_who_may_call_what(world, db, key):
    if key not in api_routes():
        pytest.skip(f"{key} is not routed (test_every_route_and_method_has_an_entry reports it)")
    route = MATRIX[key]
    mismatches = []
    for ownership in route.ownerships():
        expected = route.expected(ownership)
        for persona in MATRIX_PERSONAS:
            got = _call(world, key, route, persona, ownership)
            gap = KNOWN_GAPS.get((key, persona, ownership))
            if gap is not None:
                if got.status != gap[0]:
                    mismatches.append(
                        f"  {persona:<10} {ownership:<9} answers {got.status}, no longer the known gap {gap[0]} "
                        f"(should be {expected[persona]}): remove the cell from KNOWN_GAPS  {got.detail}"
                    )
            elif got.status != expected[persona]:
                mismatches.append(
                    f"  {persona:<10} {ownership:<9} expected {expected[persona]}, got {got.status}  {got.detail}"
                )
            else:
                mismatches += _refusal_mismatches(world, key, route, persona, ownership, got)
            if ownership == OTHER_ENV:
                absent = _call(world, key, route, persona, ownership, missing=True)
                if absent.status != got.status:
                    mismatches.append(
                        f"  {persona:<10} {ownership:<9} answers {got.status} for another environment's object but "
                        f"{absent.status} for an id that does not exist: the id leaks"
                    )
    assert not mismatches, f"{key}:\n" + "\n".join(mismatches)
