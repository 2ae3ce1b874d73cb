"""The audience editor: metadata, the visual rule builder, the live preview and validation.

Thin like every door: the form parses what the browser sent (the same shape checks as the
API's serializer), then the page calls the services and selectors the API calls —
`audience_create` / `audience_update` to save, `audience_preview` + `preview_as_seen` for
the preview panel, `audience_validate` for the checks. Problems with a JSON pointer are
shown beside what they point at: metadata errors by their field, rule errors beside their
condition in the builder (portal/static/portal/builder.js reads them from the page, or from
the `rules-problems` event an `HX-Trigger` header carries).

The builder's catalog (attributes → type → operators) is served from audiences/rules.py,
so the page offers exactly what the rules language accepts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from audiences import rules
from audiences.catalogue import selectors as catalogue
from audiences.definitions import selectors as audience_selectors
from audiences.definitions import services as audience_services
from audiences.definitions.checks import every_problem
from audiences.definitions.errors import PreviewBusy, PreviewTimedOut, PreviewTooExpensive
from audiences.models import Audience, AudienceState, Channel, ConsentStatus, Profile
from audiences.profiles.errors import PiiFilterRefused
from audiences.profiles.selectors import profile_pii_decision
from governance.actors import Actor
from governance.limits.errors import RateLimited
from governance.limits.ratelimit import PREVIEW
from governance.limits.throttling import check_request
from marketerapi.problems import ApplicationError, InvalidInput
from portal.web import Permission, Problem, can, hx_redirect, portal_actor, portal_view

EMPTY_RULES: dict[str, Any] = {"all": []}
_JSON_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}
METADATA_FIELDS = ("name", "owner_team", "channel", "purpose", "description")

OPERATOR_LABELS = {
    "eq": "is",
    "neq": "is not",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "starts_with": "starts with",
    "is_null": "is empty",
    "before": "is before",
    "after": "is after",
    "between": "is between",
    "within_days": "is within the last … days",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
}
FIELD_LABELS = {
    "name": "Name",
    "owner_team": "Owner team",
    "channel": "Channel",
    "purpose": "Purpose",
    "description": "Description",
    "rules": "Rules",
}
FIELD_HINTS = {
    "name": "Give the audience a name that is unique in this environment, e.g. “Spring EU buyers”.",
    "owner_team": "Pick the team that owns the audience: its members may edit and publish it.",
    "channel": "Pick the channel the audience is for: email, SMS, push or ads.",
    "purpose": "Say why the audience exists, e.g. winback.",
    "description": "Say in plain words who is in it.",
    "rules": "Fix the JSON in the JSON view, or build the rules with the visual builder.",
}
STEP_LABELS = {
    "matching": "Matching the rules",
    "no address": "No address for {channel}",
    "without consent": "Without {channel} consent",
    "suppressed": "Suppressed",
    "regional restriction": "Regional restriction",
    "reachable": "Reachable",
}
CHECK_LABELS = {
    "schema": "Rules",
    "required_metadata": "Details",
    "address": "Addresses",
    "consent": "Consent",
    "regional_restrictions": "Regional restrictions",
    "suppression_overlap": "Suppressions",
    "size": "Reach",
}
STATUS_BADGES = {"passed": "ok", "warning": "warn", "failed": "bad", "skipped": ""}
BREAKDOWN_LABELS = {"region": "Region", "lifecycle_stage": "Lifecycle stage", "consent": "Consent"}


# --- the form ---------------------------------------------------------------------------


class AudienceForm(forms.Form):
    """What the editor posts. Shape only, like the API's serializer; the service checks the
    rest (the owner team, the rules) and its problems are shown in place too."""

    name = forms.CharField(max_length=120)
    owner_team = forms.CharField(max_length=150, required=False)
    channel = forms.ChoiceField(choices=Channel.choices)
    purpose = forms.CharField(max_length=200)
    description = forms.CharField(max_length=10_000)
    rules = forms.CharField(required=False, strip=True)

    def clean_rules(self) -> Any:
        parsed, error = parse_rules(self.cleaned_data.get("rules", ""))
        if error is not None:
            raise forms.ValidationError(error["message"], code=error["code"])
        return parsed

    def problems(self) -> list[dict[str, str]]:
        """The form's errors as the API reports them: pointer, code, message, hint."""
        found = []
        for name, errors in self.errors.as_data().items():
            for error in errors:
                code = error.code or "invalid"
                if code == "required":
                    message = f"{FIELD_LABELS.get(name, name)} is required."
                else:
                    message = " ".join(error.messages)
                hint = FIELD_HINTS.get(name, "")
                if name == "channel" and code == "invalid_choice":
                    hint = f"Use one of: {', '.join(Channel.values)}."
                found.append({"pointer": f"/{name}", "code": code, "message": message, "hint": hint})
        return found


def parse_rules(text: str) -> tuple[Any, dict[str, str] | None]:
    """The rules from the JSON text of the editor (empty: no conditions yet)."""
    text = (text or "").strip()
    if not text:
        return dict(EMPTY_RULES), None
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, {
            "pointer": "/rules",
            "code": "malformed_json",
            "message": f"The rules are not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
            "hint": FIELD_HINTS["rules"],
        }


def _team_names(teams: list[Any], current: str | None = None) -> list[str]:
    names = [team.name for team in teams]
    if current and current not in names:
        names.insert(0, current)
    return names


# --- the builder's catalog ----------------------------------------------------------------


def rule_catalog(actor: Actor, *, exclude: int | None = None) -> dict[str, Any]:
    """What the builder may offer, from audiences/rules.py: each attribute with its type and
    the operators that type allows, event property operators, channels, the environment's
    audiences for in_audience (one query), and the custom attribute keys, event types and
    event properties its data holds (the catalogue, audiences/catalogue/selectors.py)."""
    attributes = []
    # Personal data is offered to a role that may not see it as what it may test: presence.
    sees_pii = profile_pii_decision(actor=actor).allowed
    for name, (kind, values) in rules.ATTRIBUTES.items():
        field = Profile._meta.get_field(name) if name != "email_domain" else None
        label = str(getattr(field, "verbose_name", name)) if field is not None else "email domain"
        names = dict(getattr(field, "choices", None) or [])
        personal = name in rules.PII_ATTRIBUTES
        if personal and not sees_pii:
            label += " (personal data: only whether it is set)"
        attributes.append(
            {
                "name": name,
                "label": label[:1].upper() + label[1:],
                "type": kind,
                "pii": personal,
                "values": [{"value": value, "label": f"{value} — {names.get(value, value)}"} for value in values],
            }
        )
    audiences = (
        audience_selectors.audience_list(actor=actor)
        .exclude(state=AudienceState.ARCHIVED)
        .order_by("name")
        .values_list("pk", "name", "live_version_id")
    )
    return {
        "attributes": attributes,
        "custom_prefix": rules.CUSTOM_PREFIX,
        # custom attributes (attributes.<key>) compare like JSON values (rules.attribute_type)
        "custom_type": rules.JSON,
        "operators": {kind: list(ops) for kind, ops in rules.OPERATORS.items()},
        "operator_labels": OPERATOR_LABELS,
        "event_property_operators": list(rules.EVENT_PROPERTY_OPERATORS),
        "channels": [{"value": value, "label": label} for value, label in Channel.choices],
        "audiences": [
            {"id": pk, "label": f"{name} (#{pk}{'' if live else ', not published yet'})"}
            for pk, name, live in audiences
            if pk != exclude
        ],
        "max_within_days": rules.MAX_WITHIN_DAYS,
        "default_condition": {"attr": "region", "op": "eq", "value": rules.ATTRIBUTES["region"][1][0]},
        **catalogue.builder_catalogue(actor.environment),
    }


# --- pages ----------------------------------------------------------------------------------


def _detail_url(audience_id: int) -> str:
    return reverse("portal-audiences:detail", kwargs={"audience_id": audience_id})


def _split(problems: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Problems by metadata field, and the problems of the rules (or of nothing in particular)."""
    by_field: dict[str, list[dict[str, Any]]] = {}
    other = []
    for problem in problems:
        field = str(problem.get("pointer", "")).strip("/").split("/")[0]
        if field in METADATA_FIELDS:
            by_field.setdefault(field, []).append(problem)
        else:
            other.append(problem)
    return by_field, other


def _editor(
    request: HttpRequest,
    *,
    actor: Actor,
    permission: Permission,
    form: AudienceForm | None,
    teams: list[str],
    audience: Audience | None = None,
    problem: Problem | None = None,
    status: int = 200,
) -> HttpResponse:
    problems = problem.errors if problem is not None else []
    field_problems, rule_problems = _split(problems)
    context: dict[str, Any] = {
        "actor": actor,
        "audience": audience,
        "permission": permission,
        "form": form,
        "teams": teams,
        "problem": problem,
        "field_problems": field_problems,
        "rule_problems": rule_problems,
        "marks": problem_marks("server", problems),
        "detail_url": _detail_url(audience.pk) if audience is not None else None,
    }
    if form is not None and permission:
        context["rules_text"] = _rules_text(form)
        context["catalog"] = rule_catalog(actor, exclude=audience.pk if audience is not None else None)
        context["channels"] = Channel.choices
    return render(request, "portal/audiences/editor.html", context, status=status)


def _rules_text(form: AudienceForm) -> str:
    if form.is_bound:
        return str(form.data.get("rules", ""))
    rules_value = form.initial.get("rules", EMPTY_RULES)
    return json.dumps(rules_value, indent=2, ensure_ascii=False)


def _form_problem(form: AudienceForm, actor: Actor, self_id: int | None) -> Problem:
    """The form's errors together with every problem of the rules, so that a marketer fixes
    everything in one go (the rules are checked by the same selector the service uses)."""
    found = form.problems()
    if "rules" not in form.errors:
        found += rules.rules_check(actor.environment, form.cleaned_data["rules"], self_id=self_id).problems
    count = len(found)
    return Problem(
        status=422,
        code="invalid_input",
        title="The audience was not saved",
        detail=f"{count} problem{'s' if count != 1 else ''} to fix; each is marked where it is.",
        hint="Fix each problem as its hint says, then save again.",
        errors=found,
    )


@require_http_methods(["GET", "POST"])
@portal_view
def audience_new(request: HttpRequest) -> HttpResponse:
    """A new audience: an empty editor; saving creates a draft through `audience_create`."""
    actor = portal_actor(request)
    permission = can(actor, "audience.create")
    teams = _team_names(audience_selectors.owner_team_choices(actor)) if permission else []
    if request.method == "POST":
        # Whoever may not create is refused by the service itself (and the refusal audited),
        # whatever the form holds; the problem page says why and who can.
        def create(values: dict[str, Any]) -> HttpResponse:
            values["owner_team"] = values.get("owner_team") or None
            audience = audience_services.audience_create(actor=actor, **values)
            messages.success(request, f"Created the draft audience “{audience.name}”.")
            return hx_redirect(request, _detail_url(audience.pk))

        def refuse(raw: dict[str, Any]) -> None:
            audience_services.audience_create(actor=actor, **raw)

        return _save(
            request, actor=actor, permission=permission, teams=teams, audience=None, refuse=refuse, save=create
        )
    initial = {"channel": Channel.EMAIL, "rules": EMPTY_RULES, "owner_team": teams[0] if len(teams) == 1 else ""}
    empty = AudienceForm(initial=initial) if permission else None
    return _editor(
        request, actor=actor, permission=permission, form=empty, teams=teams, status=200 if permission else 403
    )


def _raw(request: HttpRequest) -> dict[str, Any]:
    return {name: request.POST.get(name, "") for name in (*METADATA_FIELDS, "rules")}


def _save(
    request: HttpRequest,
    *,
    actor: Actor,
    permission: Permission,
    teams: list[str],
    audience: Audience | None,
    refuse: Callable[[dict[str, Any]], Any],
    save: Callable[[dict[str, Any]], HttpResponse],
) -> HttpResponse:
    """A posted editor. Without the permission, `refuse` hands the raw values to the
    service, which refuses (and audits) them whatever they hold; an invalid form or a
    refusal shows the editor again with every problem marked; otherwise what `save`
    answers."""
    form = AudienceForm(request.POST)

    def again(problem: Problem, status: int) -> HttpResponse:
        return _editor(
            request,
            actor=actor,
            permission=permission,
            form=form,
            teams=teams,
            audience=audience,
            problem=problem,
            status=status,
        )

    if not permission:
        refuse(_raw(request))
    if not form.is_valid():
        return again(_form_problem(form, actor, audience.pk if audience else None), 422)
    try:
        return save(dict(form.cleaned_data))
    except ApplicationError as error:
        return again(Problem.of(error), error.status)


def _edit_permission(actor: Actor, audience: Audience) -> Permission:
    # Permission first, then state (as the services do).
    permission = can(actor, "audience.edit", audience)
    if permission.allowed and audience.state == AudienceState.ARCHIVED:
        return Permission(
            allowed=False,
            reason=f"“{audience.name}” is archived: archived audiences are kept for the record and cannot change.",
            hint="Create a new audience instead.",
        )
    return permission


@require_http_methods(["GET", "POST"])
@portal_view
def audience_edit(request: HttpRequest, audience_id: int) -> HttpResponse:
    """Edit an audience; saving sends what changed to `audience_update`."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    permission = _edit_permission(actor, audience)
    current_team = audience.owner_team.name
    # Only those who may transfer it (its own team, an admin: the teams they may pick include
    # the owner) are offered their other teams; a share of change edits the audience but cannot
    # take it, so it is offered the owner alone. What is offered is only a form's choice:
    # `audience_transfer` decides (and audits) whatever is posted.
    choices = audience_selectors.owner_team_choices(actor) if permission else []
    transferable = any(group.pk == audience.owner_team_id for group in choices)
    teams = _team_names(choices if transferable else [], current_team) if permission else []
    if request.method == "POST":
        # Whoever may not edit (another team's audience, an archived one) is refused by the
        # service itself, and the refusal audited. A new owner team is a transfer, through
        # its own service (decided and audited as `audience.transfer`).
        def update(values: dict[str, Any]) -> HttpResponse:
            changes = _changes(audience, values)
            team = changes.pop("owner_team", None)
            if team is not None and not transferable:
                # Refused (and audited) by the service before anything else is saved.
                audience_services.audience_transfer(actor=actor, audience=audience, team=team)
            saved = audience_services.audience_update(actor=actor, audience=audience, **changes)
            if team is not None:
                # Last: once it is another team's, this person may no longer edit it.
                saved = audience_services.audience_transfer(actor=actor, audience=saved, team=team)
                changes["owner_team"] = team
            if changes:
                messages.success(request, f"Saved “{saved.name}”.")
            else:
                messages.info(request, f"Nothing changed in “{saved.name}”.")
            return hx_redirect(request, _detail_url(saved.pk))

        def refuse(raw: dict[str, Any]) -> None:
            audience_services.audience_update(actor=actor, audience=audience, **raw)

        return _save(
            request, actor=actor, permission=permission, teams=teams, audience=audience, refuse=refuse, save=update
        )
    current: AudienceForm | None = None
    if permission:
        current = AudienceForm(
            initial={
                "name": audience.name,
                "owner_team": current_team,
                "channel": audience.channel,
                "purpose": audience.purpose,
                "description": audience.description,
                "rules": audience.rules,
            }
        )
    return _editor(
        request,
        actor=actor,
        permission=permission,
        form=current,
        teams=teams,
        audience=audience,
        status=200 if permission else 403,
    )


def _changes(audience: Audience, cleaned: dict[str, Any]) -> dict[str, Any]:
    """Only what differs: an unchanged (or left empty) owner team is not re-checked — a share
    of change may edit another team's audience without being in its team — and unchanged
    rules are not re-validated."""
    changes: dict[str, Any] = {}
    for name in ("name", "channel", "purpose", "description"):
        if cleaned[name] != getattr(audience, name):
            changes[name] = cleaned[name]
    team = cleaned.get("owner_team") or ""
    if team and team != audience.owner_team.name:
        changes["owner_team"] = team
    if cleaned["rules"] != audience.rules:
        changes["rules"] = cleaned["rules"]
    return changes


# --- preview ------------------------------------------------------------------------------------


def _count_as_preview(request: HttpRequest) -> None:
    """The preview rate class of the API, counted for the same person: the portal is no way
    around it. The builder asks at most once per pause in typing."""
    result = check_request(request, PREVIEW)
    if not result.allowed:
        raise RateLimited.from_result(result)


def problem_marks(source: str, errors: list[dict[str, Any]]) -> SafeString:
    """What the builder marks beside conditions and fields: `<script class="rules-problems">`
    with {"source", "errors": [{pointer, code, message, hint}]} (an empty list clears the marks
    of `source`). It travels in the page or fragment rather than an HX-Trigger header, which
    a hundred problems with their hints would make too long for proxies."""
    payload = json.dumps({"source": source, "errors": errors}, ensure_ascii=False).translate(_JSON_ESCAPES)
    return mark_safe(f'<script type="application/json" class="rules-problems">{payload}</script>')  # noqa: S308


def waterfall_chart(steps: list[dict[str, Any]], channel: str) -> dict[str, Any]:
    """Geometry of the waterfall's SVG bar chart: one row per step, the bar what remains and
    a lighter segment after it for what the step removed."""
    width, row, bar = 300, 36, 12
    top = max(steps[0]["remaining"], 1) if steps else 1
    rows = []
    for index, step in enumerate(steps):
        y = index * row
        kept = round(width * step["remaining"] / top, 1)
        removed = round(width * step["removed"] / top, 1)
        label = STEP_LABELS.get(step["step"], step["step"]).format(channel=channel)
        value = f"{step['remaining']:,}"
        if step["removed"]:
            value = f"−{step['removed']:,} → {step['remaining']:,}"
        rows.append(
            {
                **step,
                "label": label,
                "value": value,
                "remaining_shown": f"{step['remaining']:,}",
                "removed_shown": f"{step['removed']:,}" if step["removed"] else "",
                "text_y": y + 13,
                "bar_y": y + 18,
                "kept": kept,
                "removed_width": removed,
                "final": step["step"] == "reachable",
            }
        )
    first = steps[0]["remaining"] if steps else 0
    removed_text = "; ".join(
        f"{r['label'].lower()}: {r['removed']:,} removed" for r in rows if r["removed"] and not r["final"]
    )
    last = steps[-1]["remaining"] if steps else 0
    description = f"{first:,} profiles match the rules" + (f"; {removed_text}" if removed_text else "")
    description += f"; {last:,} reachable by {channel}."
    return {"rows": rows, "width": width, "height": len(rows) * row, "bar": bar, "description": description}


def _breakdowns(breakdowns: dict[str, dict[str, int]], count: int) -> list[dict[str, Any]]:
    tables = []
    for key, values in breakdowns.items():
        tables.append(
            {
                "key": key,
                "label": BREAKDOWN_LABELS.get(key, key),
                "rows": [
                    {
                        "value": value,
                        "count": number,
                        "shown": f"{number:,}",
                        "percent": round(100 * number / count) if count else 0,
                    }
                    for value, number in values.items()
                ],
            }
        )
    return tables


# What the preview budget refuses (definitions/budget.py): shown in the panel, not as a page.
BUDGET_ERRORS = (PreviewTooExpensive, PreviewTimedOut, PreviewBusy)


def _preview_fragment(
    request: HttpRequest,
    *,
    problem: Problem | None = None,
    preview: dict[str, Any] | None = None,
    warnings: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> HttpResponse:
    """The preview panel; the builder marks the problems (or the warnings that point at a
    condition, such as a custom attribute nobody has) beside their conditions."""
    status = problem.status if problem is not None else 200
    marks = problem_marks("preview", problem.errors if problem is not None else warnings or [])
    return render(
        request,
        "portal/audiences/_preview.html",
        {"problem": problem, "preview": preview, "marks": marks, **extra},
        status=status,
    )


@require_POST
@portal_view
def audience_preview(request: HttpRequest) -> HttpResponse:
    """The preview panel for the rules and channel in the editor (nothing is saved)."""
    actor = portal_actor(request)
    _count_as_preview(request)
    audience = None
    audience_id = request.POST.get("audience_id", "")
    if audience_id.isdigit():
        # A saved audience's id guards against rules that lead back to it through in_audience.
        audience = audience_selectors.audience_get(actor=actor, audience_id=int(audience_id))
    channel = request.POST.get("channel", "")
    rules_value, malformed = parse_rules(request.POST.get("rules", ""))
    if malformed is not None or channel not in Channel.values:
        errors = [malformed] if malformed is not None else []
        if channel not in Channel.values:
            errors.append(
                {
                    "pointer": "/channel",
                    "code": "invalid_choice",
                    "message": "Choose a channel to preview the reach.",
                    "hint": f"Use one of: {', '.join(Channel.values)}.",
                }
            )
        # Rules that parse are checked too, so that every problem shows at once.
        found = (
            []
            if malformed is not None
            else audience_selectors.rules_problems(actor=actor, rules=rules_value, audience=audience)
        )
        error = every_problem(errors, found)
        return _preview_fragment(request, problem=Problem.of(error))
    try:
        result = audience_selectors.audience_preview(actor=actor, rules=rules_value, channel=channel, audience=audience)
    except (rules.InvalidRules, PiiFilterRefused, *BUDGET_ERRORS) as error:
        return _preview_fragment(request, problem=Problem.of(error))
    shown = audience_selectors.preview_as_seen(actor=actor, result=result)
    return _preview_fragment(
        request,
        preview=shown,
        warnings=[{**w, "severity": "warning"} for w in shown["warnings"] if w.get("pointer")],
        channel=channel,
        count=f"{shown['count']:,}",
        reachable=f"{shown['reachable']:,}",
        chart=waterfall_chart(shown["waterfall"], channel),
        breakdowns=_breakdowns(shown["breakdowns"], shown["count"]),
        consent_labels=dict(ConsentStatus.choices),
    )


# --- validate ---------------------------------------------------------------------------------


def _as_edited(audience: Audience, data: Any) -> tuple[Audience, list[str]]:
    """The audience with the editor's unsaved values, in memory only (never saved), so the
    checks speak about what the marketer sees; and the names of the fields that differ."""
    candidate = copy.copy(audience)
    edited = []
    for name in ("name", "channel", "purpose", "description"):
        if name in data and data[name].strip() != getattr(audience, name):
            setattr(candidate, name, data[name].strip())
            edited.append(name)
    if "owner_team" in data and not data["owner_team"].strip():
        candidate.owner_team_id = None  # type: ignore[assignment]  # an unsaved copy, checked by the service
        edited.append("owner_team")
    elif "owner_team" in data and data["owner_team"].strip() != audience.owner_team.name:
        edited.append("owner_team")
    return candidate, edited


@require_POST
@portal_view
def audience_validate(request: HttpRequest, audience_id: int) -> HttpResponse:
    """Every check `audience_validate` runs, with the editor's unsaved values when it sends
    them; problems with a pointer are marked beside their condition or field."""
    actor = portal_actor(request)
    audience = audience_selectors.audience_get(actor=actor, audience_id=audience_id)
    _count_as_preview(request)
    candidate, edited = _as_edited(audience, request.POST)
    if "rules" in request.POST:
        rules_value, malformed = parse_rules(request.POST["rules"])
        if malformed is not None:
            error = InvalidInput("The rules are not valid JSON; nothing was checked.", errors=[malformed])
            context = {"problem": Problem.of(error), "marks": problem_marks("validate", [malformed])}
            return render(request, "portal/audiences/_validation.html", context, status=422)
        if rules_value != audience.rules:
            candidate.rules = rules_value
            edited.append("rules")
    try:
        result = audience_selectors.audience_validate(actor=actor, audience=candidate)
    except PiiFilterRefused as error:
        context = {"problem": Problem.of(error), "marks": problem_marks("validate", error.errors)}
        return render(request, "portal/audiences/_validation.html", context, status=error.status)
    except BUDGET_ERRORS as error:
        context = {"problem": Problem.of(error), "marks": problem_marks("validate", [])}
        return render(request, "portal/audiences/_validation.html", context, status=error.status)
    marked: list[dict[str, Any]] = []
    for check in result["checks"]:
        severity = {"severity": "warning"} if check["status"] == "warning" else {}
        marked.extend({**error, **severity} for error in check.get("errors", []))
        for name in check.get("missing", []):
            marked.append(
                {
                    "pointer": f"/{name}",
                    "code": "required",
                    "message": f"{FIELD_LABELS.get(name, name)} is required before publishing.",
                    "hint": FIELD_HINTS.get(name, ""),
                }
            )
    checks = [
        {
            **check,
            "label": CHECK_LABELS.get(check["code"], check["code"]),
            "badge": STATUS_BADGES.get(check["status"], ""),
        }
        for check in result["checks"]
    ]
    return render(
        request,
        "portal/audiences/_validation.html",
        {
            "result": result,
            "checks": checks,
            "audience": audience,
            "edited": [FIELD_LABELS[name].lower() for name in edited],
            "marks": problem_marks("validate", marked),
        },
    )


urlpatterns: list[URLPattern] = [
    path("new/", audience_new, name="new"),
    path("preview/", audience_preview, name="preview"),
    path("<int:audience_id>/edit/", audience_edit, name="edit"),
    path("<int:audience_id>/validate/", audience_validate, name="validate"),
]
