"""Every state change is audited (PRODUCT.md §1, "one audit point").

1. Every route under /api/v1/ that accepts POST, PUT, PATCH or DELETE has an entry in
   CALLS saying how to make a successful call; the call must write exactly one audit
   event with the right action and an `allowed` (or `approval_requested`) outcome.
   A new unsafe route without an entry fails `test_every_unsafe_route_has_a_call`.
2. No module outside the services changes a governed model with `QuerySet.update()`,
   `bulk_update()` or a raw SQL UPDATE: those skip `save()`, so they write neither an
   audit event nor a history row. Each justified exception is listed in ALLOWED_WRITES.
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.utils import timezone
from simple_history.models import registered_models

from governance.models import AuditEvent, Environment, OutboxEvent
from integrations.models import DeadLetter
from tests import routes
from tests.conftest import issue_test_token
from tests.factories import (
    ApprovalRequestFactory,
    AudienceFactory,
    AudienceVersionFactory,
    DestinationFactory,
    ProfileFactory,
    WebhookSubscriptionFactory,
    team,
)
from tests.routes import UNSAFE, dotted

# --- 1. every unsafe route writes one audit event -------------------------------------

SUCCESS = ("allowed", "approval_requested")


@dataclass(frozen=True)
class Call:
    """A successful call of one unsafe route.

    `setup(user, environment)` prepares what the call needs (the persona's user and its
    token's environment are passed) and returns the values of the path's {parameters};
    `body` is the JSON body, or a function of those values that returns it.
    """

    persona: str
    # None: a POST that only reads (preview, validate): it must write no audit event.
    action: str | None
    body: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | None = None
    setup: Callable[[Any, Environment], dict[str, Any]] | None = None
    environment: str = "sandbox"
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return timezone.now().isoformat()


def _profile(user: Any, environment: Environment) -> dict[str, Any]:
    ProfileFactory(environment=environment, external_id="cust-audit-1")
    return {}


def _own_token(user: Any, environment: Environment) -> dict[str, Any]:
    issue_test_token(user, environment)
    return {"token_id": user.api_tokens.latest("id").pk}


def _webhook(user: Any, environment: Environment) -> dict[str, Any]:
    subscription = WebhookSubscriptionFactory(
        environment=environment, url="http://127.0.0.1:9/hook", event_types=["audience.published"], created_by=user
    )
    return {"webhook_id": subscription.pk}


def _dead_letter(user: Any, environment: Environment) -> dict[str, Any]:
    event = OutboxEvent.objects.create(
        environment=environment, type="audience.published", aggregate_type="audiences.audience", aggregate_id="1"
    )
    letter = DeadLetter.objects.create(
        environment=environment,
        kind="outbox_dispatch",
        reference_id=str(event.pk),
        payload={"event_id": str(event.event_id)},
        attempts=8,
        last_error="connection refused",
    )
    return {"dead_letter_id": letter.pk}


def _audience(user: Any, environment: Environment) -> dict[str, Any]:
    audience = AudienceFactory(
        environment=environment, name="Audit completeness", rules={"attr": "region", "op": "eq", "value": "EU"}
    )
    team("retention")
    return {"audience_id": audience.pk}


def _published_audience(user: Any, environment: Environment) -> dict[str, Any]:
    audience = AudienceFactory(environment=environment, name="Audit export", published=True)
    return {"audience_id": audience.pk}


def _shared_audience(user: Any, environment: Environment) -> dict[str, Any]:
    from django.contrib.auth.models import Group

    from audiences.models import Audience
    from governance.access.objectperms import share

    params = _audience(user, environment)
    share(Audience.objects.get(pk=params["audience_id"]), Group.objects.get(name="retention"), "change")
    return params


def _audience_with_versions(user: Any, environment: Environment) -> dict[str, Any]:
    """A published audience whose version 2 is live and version 1 can be rolled back to."""
    from audiences.models import Audience

    params = _audience(user, environment)
    audience = Audience.objects.get(pk=params["audience_id"])
    AudienceVersionFactory(audience=audience)
    AudienceVersionFactory(audience=audience, live=True)
    return params


# Where file destinations drop; each test points it at its own tmp_path.
DROP_ROOT = Path(tempfile.gettempdir())


def _drop_directory(user: Any, environment: Environment) -> dict[str, Any]:
    return {"directory": tempfile.mkdtemp(prefix="drop-", dir=DROP_ROOT)}


def _destination(user: Any, environment: Environment) -> dict[str, Any]:
    directory = _drop_directory(user, environment)["directory"]
    destination = DestinationFactory(
        environment=environment, name="drop", config={"directory": directory, "format": "jsonl"}, created_by=user
    )
    return {"destination_id": destination.pk}


def _approval_request(requester: Any, environment: Environment) -> dict[str, Any]:
    """A pending dual-control request (an approver's vote leaves it pending, so nothing runs)."""
    request = ApprovalRequestFactory(environment=environment, requester=requester, target_id="0")
    return {"approval_id": request.pk}


def _others_approval(user: Any, environment: Environment) -> dict[str, Any]:
    from tests.factories import UserFactory

    return _approval_request(UserFactory(username="audit-requester", groups=["campaign_operator"]), environment)


def _flag(user: Any, environment: Environment) -> dict[str, Any]:
    from waffle.models import Flag

    Flag.objects.create(name="audit-flag", everyone=None)
    return {"name": "audit-flag"}


def _campaign(state: str = "draft") -> Callable[[Any, Environment], dict[str, Any]]:
    """A campaign of growth (the operator's team) in `state`, to an audience with one reachable member."""

    def setup(user: Any, environment: Environment) -> dict[str, Any]:
        from tests.factories import CampaignFactory

        team("retention")
        member = ProfileFactory(environment=environment, external_id="cust-audit-c", consent="granted")
        audience = AudienceFactory(environment=environment, name="Audit campaign audience", owner_team=team("growth"))
        AudienceVersionFactory(audience=audience, memberships=[member], live=True)
        directory = _drop_directory(user, environment)["directory"]
        destination = DestinationFactory(environment=environment, config={"directory": directory, "format": "jsonl"})
        campaign = CampaignFactory(
            environment=environment,
            audience=audience,
            owner_team=team("growth"),
            destination=destination,
            state=state,
            version=audience.live_version if state != "draft" else None,
        )
        return {"campaign_id": campaign.pk, "audience": audience.pk, "destination": destination.pk}

    return setup


def _review_item(user: Any, environment: Environment) -> dict[str, Any]:
    from campaigns.models import Campaign, ReviewItem

    params = _campaign("partially_succeeded")(user, environment)
    campaign = Campaign.objects.get(pk=params["campaign_id"])
    item = ReviewItem.objects.create(
        environment=environment, campaign=campaign, destination=campaign.destination, recipients=1, why="audit"
    )
    return {"item_id": item.pk}


def _previewable(user: Any, environment: Environment) -> dict[str, Any]:
    from waffle.models import Flag

    Flag.objects.update_or_create(name="destination_payload_preview", defaults={"everyone": True})
    params = _campaign()(user, environment)
    return {"destination_id": params["destination"], "campaign": params["campaign_id"]}


# "METHOD /api/v1/path/{parameter}" → how to call it successfully.
CALLS: dict[str, Call] = {
    "POST /api/v1/destinations/{destination_id}/preview": Call(
        "analyst", None, lambda params: {"campaign": params["campaign"], "sample": 1}, setup=_previewable
    ),
    "POST /api/v1/campaigns": Call(
        "operator",
        "campaign.create",
        lambda params: {
            "name": "Audit campaign",
            "owner_team": "growth",
            "purpose": "winback",
            "channel": "email",
            "audience": params["audience"],
            "destination": params["destination"],
        },
        setup=_campaign(),
    ),
    "PATCH /api/v1/campaigns/{campaign_id}": Call("operator", "campaign.edit", {"purpose": "audit"}, setup=_campaign()),
    "DELETE /api/v1/campaigns/{campaign_id}": Call("operator", "campaign.delete", setup=_campaign()),
    "POST /api/v1/campaigns/{campaign_id}/share": Call(
        "operator", "campaign.share", {"team": "retention", "level": "change"}, setup=_campaign()
    ),
    "POST /api/v1/campaigns/{campaign_id}/activate": Call("operator", "campaign.activate", setup=_campaign()),
    "POST /api/v1/campaigns/{campaign_id}/pause": Call("operator", "campaign.pause", setup=_campaign("active")),
    "POST /api/v1/campaigns/{campaign_id}/resume": Call("operator", "campaign.resume", setup=_campaign("paused")),
    "POST /api/v1/campaigns/{campaign_id}/cancel": Call("operator", "campaign.cancel", setup=_campaign("active")),
    "POST /api/v1/review-items/{item_id}/retry": Call("operator", "review_item.retry", setup=_review_item),
    "POST /api/v1/review-items/{item_id}/cancel": Call("operator", "review_item.cancel", setup=_review_item),
    "POST /api/v1/tokens": Call("developer", "token.create", {"name": "crm-sync", "scopes": ["read", "ingest"]}),
    "DELETE /api/v1/tokens/{token_id}": Call("developer", "token.revoke", setup=_own_token),
    "POST /api/v1/profiles/bulk": Call(
        "developer", "profile.ingest", {"profiles": [{"external_id": "cust-audit-1", "region": "EU"}]}
    ),
    "POST /api/v1/profile-events/bulk": Call(
        "developer",
        "profile_event.ingest",
        lambda _: {"events": [{"external_id": "cust-audit-1", "type": "purchase", "occurred_at": _now()}]},
        setup=_profile,
    ),
    "POST /api/v1/consent/sync": Call(
        "developer",
        "consent.sync",
        lambda _: {
            "updates": [
                {
                    "external_id": "cust-audit-1",
                    "channel": "email",
                    "status": "granted",
                    "source": "signup_form",
                    "captured_at": _now(),
                }
            ]
        },
        setup=_profile,
    ),
    "POST /api/v1/webhooks": Call(
        "developer", "webhook.create", {"url": "http://127.0.0.1:9/hook", "event_types": ["audience.published"]}
    ),
    "PATCH /api/v1/webhooks/{webhook_id}": Call(
        "developer", "webhook.update", {"description": "CRM listener"}, setup=_webhook
    ),
    "DELETE /api/v1/webhooks/{webhook_id}": Call("developer", "webhook.delete", setup=_webhook),
    "POST /api/v1/destinations": Call(
        "developer",
        "destination.create",
        lambda params: {
            "name": "drop",
            "adapter": "file",
            "config": {"directory": params["directory"], "format": "jsonl"},
        },
        setup=_drop_directory,
    ),
    "PATCH /api/v1/destinations/{destination_id}": Call(
        "developer", "destination.update", {"is_active": False}, setup=_destination
    ),
    "POST /api/v1/destinations/{destination_id}/test": Call("developer", "destination.test", setup=_destination),
    "POST /api/v1/dead-letters/{dead_letter_id}/replay": Call("developer", "dead_letter.replay", setup=_dead_letter),
    "POST /api/v1/dead-letters/{dead_letter_id}/discard": Call("developer", "dead_letter.discard", setup=_dead_letter),
    "POST /api/v1/approvals/{approval_id}/approve": Call(
        "approver", "approval.approve", {"comment": "ok"}, setup=_others_approval, environment="pilot"
    ),
    "POST /api/v1/approvals/{approval_id}/reject": Call(
        "approver", "approval.reject", {"comment": "not now"}, setup=_others_approval, environment="pilot"
    ),
    "POST /api/v1/approvals/{approval_id}/cancel": Call(
        "operator", "approval.cancel", setup=_approval_request, environment="pilot"
    ),
    "PATCH /api/v1/flags/{name}": Call("admin", "flag.change", {"everyone": True}, setup=_flag),
    "POST /api/v1/audiences": Call(
        "operator",
        "audience.create",
        {
            "name": "Lapsed EU",
            "channel": "email",
            "purpose": "winback",
            "description": "EU customers who lapsed.",
            "rules": {"attr": "region", "op": "eq", "value": "EU"},
        },
    ),
    "PATCH /api/v1/audiences/{audience_id}": Call(
        "operator", "audience.edit", {"purpose": "retention"}, setup=_audience
    ),
    "DELETE /api/v1/audiences/{audience_id}": Call("operator", "audience.delete", setup=_audience),
    "POST /api/v1/metrics/policy/simulate": Call(
        "admin", None, {"kind": "quota", "action": "audience.publish", "limit": 1}
    ),
    "POST /api/v1/metrics/policy/proposals": Call(
        "admin",
        "approval_policy.propose",
        {"kind": "approval_policy", "action": "audience.publish", "steps": [["approver"]]},
    ),
    "POST /api/v1/audiences/preview": Call(
        "analyst", None, {"rules": {"attr": "region", "op": "eq", "value": "EU"}, "channel": "email"}
    ),
    "POST /api/v1/audiences/{audience_id}/preview": Call("analyst", None, setup=_audience),
    "POST /api/v1/audiences/{audience_id}/validate": Call("analyst", None, setup=_audience),
    "POST /api/v1/audiences/{audience_id}/share": Call(
        "operator", "audience.share", {"team": "retention", "level": "change"}, setup=_audience
    ),
    "DELETE /api/v1/audiences/{audience_id}/share": Call(
        "operator", "audience.unshare", {"team": "retention"}, setup=_shared_audience
    ),
    "POST /api/v1/audiences/{audience_id}/transfer": Call(
        "operator", "audience.transfer", {"team": "retention"}, setup=_audience
    ),
    "POST /api/v1/audiences/{audience_id}/promote": Call(
        "operator", "audience.promote", {"environment": "production"}, setup=_audience
    ),
    "POST /api/v1/audiences/{audience_id}/copy": Call("operator", "audience.copy", {}, setup=_audience),
    "POST /api/v1/audiences/{audience_id}/publish": Call("operator", "audience.publish", {}, setup=_audience),
    "POST /api/v1/audiences/{audience_id}/rollback": Call(
        "operator", "audience.rollback", {"version": 1}, setup=_audience_with_versions
    ),
    "POST /api/v1/suppressions": Call(
        "operator", "suppression.change_global", {"list": "global", "entries": [{"external_id": "cust-audit-1"}]}
    ),
    "POST /api/v1/exports": Call(
        "analyst",
        "export.create",
        lambda values: {"audience": values["audience_id"], "fields": ["external_id", "email"]},
        setup=_published_audience,
    ),
}


def unsafe_routes() -> dict[str, str]:
    """ "METHOD /api/v1/…" → the view's dotted name, for every unsafe route of the API."""
    found: dict[str, str] = {}
    for key, view in routes.api_routes(UNSAFE).items():
        found[key] = dotted(view)
        # Views that check the policy early name their action; suggest it.
        action = getattr(view, "policy_actions", {}).get(key.split(" ", 1)[0])
        if action:
            found[key] += f", policy action {action!r}"
    return found


def test_every_unsafe_route_has_a_call():
    routes = unsafe_routes()
    missing = sorted(set(routes) - set(CALLS))
    stale = sorted(set(CALLS) - set(routes))

    message = ""
    if missing:
        message += (
            "These API routes change state but have no entry in CALLS in "
            "tests/governance/test_audit_completeness.py, so nobody checks that they write their audit event:\n"
            + "".join(f"  {key}   ({routes[key]})\n" for key in missing)
            + "Add one entry per route: the persona who may call it, the audit action it must record, a body "
            "that succeeds and, when the path has {parameters}, a setup(user, environment) that creates the "
            "object and returns them, e.g.\n"
            + "".join(f'    "{key}": Call("developer", "<app>.<verb>", {{...}}, setup=...),\n' for key in missing)
        )
    if stale:
        message += "These entries of CALLS name routes that no longer exist; remove or rename them:\n" + "".join(
            f"  {key}\n" for key in stale
        )
    assert not message, message


@pytest.mark.parametrize("key", sorted(CALLS))
def test_a_successful_unsafe_call_writes_exactly_one_audit_event(api, key, tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.DROP_ROOT", tmp_path)
    if key not in unsafe_routes():
        pytest.skip(f"{key} is not routed (test_every_unsafe_route_has_a_call reports it)")
    call = CALLS[key]
    method, path = key.split(" ", 1)
    environment = Environment.objects.get(slug=call.environment)
    client = api(call.persona, environment)
    params = call.setup(client.user, environment) if call.setup else {}
    body = call.body(params) if callable(call.body) else call.body
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    response = client.generic(
        method,
        path.format(**params),
        data=None if body is None else json.dumps(body),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in call.headers.items()},
    )

    assert response.status_code < 300, f"{key} did not succeed: {response.status_code} {response.content[:800]!r}"
    written = list(AuditEvent.objects.filter(id__gt=before).values_list("action", "outcome", "actor_label"))
    if call.action is None:
        assert written == [], f"{key} only reads, yet wrote audit events: {written}"
        return
    assert len(written) == 1, f"{key} wrote {len(written)} audit events, not one: {written}"
    action, outcome, actor_label = written[0]
    assert action == call.action, f"{key} audited {action!r}, expected {call.action!r}"
    assert outcome in SUCCESS
    assert actor_label == client.user.username


# --- 2. no bulk UPDATE of a governed model outside the services -----------------------

# Customer data whose every change a service audits, beside the models that keep history.
AUDITED_DATA = (
    "audiences.Profile",
    "audiences.Consent",
    "audiences.ConsentChange",
    "audiences.ProfileEvent",
    "audiences.SuppressionEntry",
)

# (module path, "Model.method") → why this write may skip save(), the audit and the history.
ALLOWED_WRITES: dict[tuple[str, str], str] = {
    ("governance/access/auth.py", "ApiToken.update"): (
        "last_used_at is bookkeeping written at most once a minute per token while authenticating; it is "
        "excluded from the token's history and is no action of anyone's."
    ),
    ("integrations/webhooks/delivery.py", "WebhookSubscription.update"): (
        "failing_since is delivery bookkeeping set and cleared by the relay (excluded from the subscription's "
        "history); pausing a failing subscription goes through webhooks.webhook_pause_failing, which audits."
    ),
}

_MANAGERS = frozenset({"objects", "_default_manager", "_base_manager"})
_WRITES = frozenset({"update", "bulk_update"})


def governed_models() -> dict[str, Any]:
    """Dotted class path (`governance.models.ApiToken`) → model, for every governed model:
    each model that keeps history, the audit trail itself, and AUDITED_DATA."""
    models = [m for m in registered_models.values() if not m._meta.auto_created]
    models.append(AuditEvent)
    for label in AUDITED_DATA:
        try:
            models.append(apps.get_model(label))
        except LookupError:
            continue
    return {f"{m.__module__}.{m.__name__}": m for m in models}


def _project_modules() -> Iterator[tuple[str, Path]]:
    root = Path(settings.BASE_DIR)
    skip_dirs = {".venv", "venv", "node_modules", "tests", "migrations", "__pycache__", "staticfiles", ".git"}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if skip_dirs & set(relative.parts[:-1]) or relative.parts[0].startswith("."):
            continue
        if path.name == "services.py" or "services" in relative.parts[:-1]:
            continue
        yield relative.as_posix(), path


class _Scanner(ast.NodeVisitor):
    """Finds `<governed model>.objects….update(…)` and `.bulk_update(…)`, directly or through
    a variable assigned from such a chain, and raw `UPDATE <governed table>` strings."""

    def __init__(self, module: str, governed: dict[str, Any]) -> None:
        self.module = module
        self.package = module.rpartition(".")[0]
        self.governed = governed
        self.tables = {m._meta.db_table.lower(): m for m in governed.values()}
        self.names: dict[str, str] = {}  # local name → dotted path (imports and classes)
        self.querysets: dict[str, Any] = {}  # variable → governed model
        self.hits: list[tuple[str, int]] = []  # ("Model.method", line)
        self.fields: dict[str, set[str]] = {}  # "Model.update" → the fields it sets

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            local = alias.asname or alias.name.split(".")[0]
            self.names[local] = alias.name if alias.asname else local

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.module.split(".")[: -node.level]
            base = ".".join([*parts, base] if base else parts)
        for alias in node.names:
            self.names[alias.asname or alias.name] = f"{base}.{alias.name}"

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names.setdefault(node.name, f"{self.module}.{node.name}")
        self.generic_visit(node)

    def _model(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            return self.governed.get(self.names.get(node.id, ""))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return self.governed.get(f"{self.names.get(node.value.id, node.value.id)}.{node.attr}")
        return None

    def _queryset_of(self, node: ast.AST) -> Any:
        while True:
            if isinstance(node, ast.Call):
                node = node.func
            elif isinstance(node, ast.Subscript):
                node = node.value
            elif isinstance(node, ast.Attribute):
                if node.attr in _MANAGERS:
                    return self._model(node.value)
                node = node.value
            elif isinstance(node, ast.Name):
                return self.querysets.get(node.id)
            else:
                return None

    def visit_Assign(self, node: ast.Assign) -> None:
        model = self._queryset_of(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                if model is not None:
                    self.querysets[target.id] = model
                else:
                    self.querysets.pop(target.id, None)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr in _WRITES:
            model = self._queryset_of(node.func.value)
            if model is not None:
                what = f"{model.__name__}.{node.func.attr}"
                self.hits.append((what, node.lineno))
                self.fields.setdefault(what, set()).update(k.arg or "**" for k in node.keywords)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            for table in re.findall(r"\bUPDATE\s+(?:ONLY\s+)?[\"`]?(\w+)", node.value, flags=re.IGNORECASE):
                model = self.tables.get(table.lower())
                if model is not None:
                    self.hits.append((f"{model.__name__}.raw UPDATE", node.lineno))


def _outside_history(model: Any) -> set[str]:
    """The fields of a model that its simple-history leaves out (bookkeeping, secrets)."""
    history = getattr(model, "history", None)
    if history is None or not hasattr(history, "model"):
        return set()
    kept = {f.name for f in history.model._meta.fields}
    return {f.name for f in model._meta.concrete_fields} - kept


def bulk_writes(fields: dict[tuple[str, str], set[str]] | None = None) -> dict[tuple[str, str], list[int]]:
    """(module path, "Model.method") → lines, for every module outside the services;
    `fields`, when given, receives the fields each `update()` sets."""
    governed = governed_models()
    found: dict[tuple[str, str], list[int]] = {}
    for relative, path in _project_modules():
        module = relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        scanner = _Scanner(module, governed)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        except SyntaxError:
            continue
        # Imports first, so a name is known wherever it is used in the module.
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                scanner.visit(node)
        scanner.visit(tree)
        for what, line in scanner.hits:
            found.setdefault((relative, what), []).append(line)
            if fields is not None:
                fields.setdefault((relative, what), set()).update(scanner.fields.get(what, set()))
    return found


def _describe(what: str, fields: set[str], governed: dict[str, Any]) -> str:
    if not fields:
        return ""
    model = next((m for m in governed.values() if m.__name__ == what.split(".")[0]), None)
    note = f" sets {', '.join(sorted(fields))}"
    if model is not None and fields <= _outside_history(model):
        note += " (all outside the model's history: if this is bookkeeping, allow-list it)"
    return note


def test_no_bulk_update_of_a_governed_model_outside_the_services():
    fields: dict[tuple[str, str], set[str]] = {}
    found = bulk_writes(fields)
    governed = governed_models()
    unexplained = {key: lines for key, lines in found.items() if key not in ALLOWED_WRITES}
    stale = sorted(set(ALLOWED_WRITES) - set(found))

    message = ""
    if unexplained:
        message += (
            "These modules change governed models with QuerySet.update(), bulk_update() or raw SQL, which skips "
            "save(): no audit event and no history row is written:\n"
            + "".join(
                f"  {path}:{','.join(map(str, lines))}  {what}{_describe(what, fields[(path, what)], governed)}\n"
                for (path, what), lines in unexplained.items()
            )
            + "Move the write into a service (<app>/services.py), which asks governance.policy and records one "
            "audit event in the same transaction; or, if it truly is bookkeeping rather than an action, add "
            '(path, "Model.method") to ALLOWED_WRITES in tests/governance/test_audit_completeness.py with the '
            "reason.\n"
        )
    if stale:
        message += "These ALLOWED_WRITES no longer occur; remove them:\n" + "".join(f"  {key}\n" for key in stale)
    assert not message, message


def test_the_scanner_finds_what_it_is_meant_to_find(tmp_path):
    source = """
from governance.models import ApiToken as Token, AuditEvent
from governance import models as gm
from governance.models import OutboxEvent

def f(ids, tokens):
    Token.objects.filter(pk__in=ids).update(name="x")
    gm.Environment.objects.bulk_update([], ["name"])
    qs = AuditEvent.objects.filter(action="x")
    qs.update(action="y")
    OutboxEvent.objects.filter(pk=1).update(attempts=0)   # bookkeeping, not governed
    {"a": 1}.update(b=2)
    Token.objects.select_for_update().get(pk=1)
    sql = "UPDATE governance_apitoken SET name = 'x'"
"""
    governed = governed_models()
    scanner = _Scanner("governance.example", governed)
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            scanner.visit(node)
    scanner.visit(tree)

    assert [what for what, _ in scanner.hits] == [
        "ApiToken.update",
        "Environment.bulk_update",
        "AuditEvent.update",
        "ApiToken.raw UPDATE",
    ]
