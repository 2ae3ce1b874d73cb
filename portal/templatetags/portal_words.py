"""Plain words for approval requests and audit events: what the portal's pages say.

In templates, `{% load portal_words %}` then `{{ approval|approval_words }}`,
`{{ approval|policy_words }}`, `{{ approval|approved_by }}`, `{{ approval|result_words }}`,
`{{ event|event_words }}`. The functions are plain Python too (views and tests call them).

Words only: every fact comes from what the services stored — a request's action, change
snapshot and policy snapshot; an audit event's action, target, outcome, reasons and changes.
Nothing here decides anything.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django import template
from django.utils import timezone

from governance.approvals import windows
from governance.approvals.selectors import counting_approvals, received_of, request_steps
from governance.approvals.services import SCHEDULE_MARK
from governance.approvals.steps import describe_step, describe_steps
from governance.models import ApprovalRequest, ApprovalState, AuditEvent, Outcome

register = template.Library()


# --- small helpers ----------------------------------------------------------------------------


def plural(count: Any, word: str, many: str | None = None) -> str:
    """1 person, 1,204 people."""
    number = int(count or 0)
    return f"{number:,} {word if number == 1 else (many or word + 's')}"


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _quoted(label: str) -> str:
    return f"'{label}'"


def _base_summary(summary: str) -> str:
    """A request's summary without the schedule note the workflow appends."""
    return (summary or "").split(SCHEDULE_MARK)[0]


def _entries(keys: Any) -> int:
    """How many suppression entries a change snapshot's `{"email": [...], "phone": [...]}` holds."""
    if not isinstance(keys, Mapping):
        return 0
    return sum(len(values) for values in keys.values() if isinstance(values, list | tuple))


# --- approval requests -------------------------------------------------------------------------


@register.filter
def approval_words(request: ApprovalRequest) -> str:
    """The request in business terms: "Publish 'Spring EU buyers': adds 1,204 people, removes 56"."""
    change = request.change or {}
    context = change.get("context") or {}
    label = change.get("name") or request.target_label or request.target_id
    action = request.action
    if action == "audience.publish":
        added, removed, reach = change.get("added"), change.get("removed"), context.get("reach")
        text = f"Publish {_quoted(label)}"
        if added is not None or removed is not None:
            text += f": adds {plural(added, 'person', 'people')}, removes {_number(removed or 0)}"
        if reach is not None:
            channel = change.get("channel")
            text += f" (reach {_number(reach)}" + (f" by {channel})" if channel else ")")
        return text
    if action == "audience.rollback":
        reach = context.get("reach")
        text = f"Roll {_quoted(label)} back to version {change.get('version')}"
        return text + (f" ({plural(reach, 'member')})" if reach is not None else "")
    if action == "audience.archive":
        return f"Archive the published audience {_quoted(label)}"
    if action == "suppression.change_global":
        parts = []
        added, removed = _entries(change.get("add")), _entries(change.get("remove"))
        if added:
            parts.append(f"add {plural(added, 'entry', 'entries')}")
        if removed:
            parts.append(f"remove {plural(removed, 'entry', 'entries')}")
        return "Change the global suppression list: " + (" and ".join(parts) or "no entries")
    if action == "flag.disable_personalization":
        flag = str(change.get("flag") or request.target_label)
        return _base_summary(request.summary) or f"Switch off the personalization flag {_quoted(flag)}"
    # Actions without words of their own (campaigns, exports…): the service's own summary.
    return _base_summary(request.summary) or f"{action} on {label}"


@register.filter
def policy_words(request: ApprovalRequest) -> str:
    """Which policy asked, and for whom: "The policy 'Deleting or archiving a published
    audience' asks for 2 approvals: an approver and a developer or admin."."""
    snapshot = request.policy or {}
    steps = tuple(tuple(step) for step in request_steps(request))
    name = snapshot.get("description") or snapshot.get("action") or request.action
    metric, threshold = snapshot.get("metric") or "", snapshot.get("threshold")
    return _policy_sentence(str(name), str(metric), threshold if isinstance(threshold, int) else None, steps)


@functools.lru_cache(maxsize=256)
def _policy_sentence(name: str, metric: str, threshold: int | None, steps: tuple[tuple[str, ...], ...]) -> str:
    condition = f" (when {metric} is over {_number(threshold)})" if metric and threshold is not None else ""
    people = " — different people" if len(steps) > 1 else ""
    return (
        f"The policy {_quoted(name)}{condition} asks for {plural(len(steps), 'approval')}: "
        f"{describe_steps([list(step) for step in steps])}{people}."
    )


@register.filter
def steps_words(steps: Any) -> str:
    """[["approver"], ["developer", "admin"]] → "an approver and a developer or admin"."""
    return describe_steps(list(steps or []))


@register.filter
def step_words(roles: Any) -> str:
    """["developer", "admin"] → "a developer or admin"."""
    return describe_step(list(roles or []))


@register.filter
def role_words(role: str) -> str:
    """ "approver" → "an approver", "developer" → "a developer"."""
    return describe_step([role]) if role else ""


@register.filter
def as_json(value: Any) -> str:
    """A stored JSON value, indented, for the "as filed" and "changes" disclosures."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def approved_by(request: ApprovalRequest) -> str:
    """Who has approved so far, from the prefetched votes: "p-approver (approver)"."""
    votes = counting_approvals(list(request.votes.all()))
    if not votes:
        return "nobody yet"
    return ", ".join(f"{v.voter.get_username()} ({v.role})" if v.role else v.voter.get_username() for v in votes)


@register.filter
def approvals_count(request: ApprovalRequest) -> str:
    """ "1 of 2 approvals", from the prefetched votes."""
    return f"{received_of(request)} of {plural(request.required, 'approval')}"


def _duration(left: timedelta) -> str:
    """A time left, as people say it: "2 days, 23 hours", "5 hours", "12 minutes"."""
    minutes = max(int(left.total_seconds() // 60), 0)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return plural(days, "day") + (f", {plural(hours, 'hour')}" if hours else "")
    if hours:
        return plural(hours, "hour")
    return plural(max(mins, 1), "minute")


@register.filter
def when_words(request: ApprovalRequest) -> str:
    """The moment that matters for the request's state: its expiry while pending, its change
    window once approved, when it ran or was decided afterwards."""
    now = timezone.now()
    if request.state == ApprovalState.PENDING:
        if request.expires_at <= now:
            return "Its 72 hours are up: it expires at the next sweep."
        return f"Expires in {_duration(request.expires_at - now)} ({request.expires_at:%Y-%m-%d %H:%M} UTC)."
    if request.state == ApprovalState.APPROVED and request.executed_at is None:
        if request.scheduled_for is not None:
            moment = windows.describe_moment(request.environment, request.scheduled_for)
            return f"Approved; scheduled for {moment}, the next change window."
        return "Approved; the action is running now."
    if request.state in (ApprovalState.EXECUTED, ApprovalState.FAILED) and request.executed_at is not None:
        return f"Ran {request.executed_at:%Y-%m-%d %H:%M} UTC."
    if request.decided_at is not None:
        return f"{request.get_state_display()} {request.decided_at:%Y-%m-%d %H:%M} UTC."
    return ""


@register.filter
def result_words(request: ApprovalRequest) -> str:
    """What running the approved action did (executed) or why it did not (failed)."""
    result = request.result or {}
    if request.state == ApprovalState.FAILED:
        error = result.get("error") or {}
        return f"It did not run: {error.get('message') or 'the action failed'}"
    if request.state != ApprovalState.EXECUTED:
        return ""
    label = _quoted((request.change or {}).get("name") or request.target_label)
    action = request.action
    if action == "audience.archive":
        return f"The audience {label} is archived; its members stop syncing."
    if action in ("audience.publish", "audience.rollback"):
        return f"Version {result.get('version')} of {label} is being built (job {result.get('job')})."
    if action == "suppression.change_global":
        return (
            f"The global suppression list changed: {plural(result.get('added'), 'entry', 'entries')} added, "
            f"{_number(result.get('removed') or 0)} removed."
        )
    if action == "flag.disable_personalization":
        return f"The flag {_quoted((request.change or {}).get('flag') or request.target_label)} is switched off."
    return "The action ran."


# --- audit events -----------------------------------------------------------------------------

# (done, tried): "maria published 'X'", "tom tried to publish 'X'"; {t} is the target.
PHRASES: dict[str, tuple[str, str]] = {
    "audience.create": ("created the audience {t}", "create the audience {t}"),
    "audience.edit": ("changed {t}", "change {t}"),
    "audience.publish": ("published {t}", "publish {t}"),
    "audience.rollback": ("rolled {t} back", "roll {t} back"),
    "audience.archive": ("archived {t}", "archive {t}"),
    "audience.delete": ("deleted the draft {t}", "delete {t}"),
    "audience.share": ("shared {t}", "share {t}"),
    "audience.unshare": ("took back a share of {t}", "take back a share of {t}"),
    "audience.promote": ("promoted {t} into this environment", "promote {t}"),
    "audience.copy": ("made the draft {t}", "copy {t}"),
    "suppression.create": ("created the suppression list {t}", "create the suppression list {t}"),
    "suppression.change": ("changed the suppression list {t}", "change the suppression list {t}"),
    "suppression.change_global": ("changed the global suppression list", "change the global suppression list"),
    "regional_restriction.create": ("added the regional restriction {t}", "add a regional restriction"),
    "regional_restriction.change": ("changed the regional restriction {t}", "change the regional restriction {t}"),
    "profile.ingest": ("loaded a {t}", "load a {t}"),
    "profile_event.ingest": ("loaded a {t}", "load a {t}"),
    "consent.sync": ("synced a {t}", "sync a {t}"),
    "profile.pii_read": ("read the personal data of {t}", "read the personal data of {t}"),
    "token.create": ("issued the API token {t}", "issue an API token"),
    "token.revoke": ("revoked the API token {t}", "revoke the API token {t}"),
    "service_account.create": ("created the service account {t}", "create a service account"),
    "destination.create": ("added the destination {t}", "add a destination"),
    "destination.update": ("changed the destination {t}", "change the destination {t}"),
    "destination.test": ("tested the connection of {t}", "test the connection of {t}"),
    "destination.push_retry": ("retried the pushes to {t}", "retry the pushes to {t}"),
    "destination.breaker_reset": ("reset the circuit breaker of {t}", "reset the circuit breaker of {t}"),
    "webhook.create": ("subscribed the webhook {t}", "subscribe a webhook"),
    "webhook.update": ("changed the webhook {t}", "change the webhook {t}"),
    "webhook.delete": ("deleted the webhook {t}", "delete the webhook {t}"),
    "flag.change": ("changed the flag {t}", "change the flag {t}"),
    "flag.disable_personalization": ("switched off the personalization flag {t}", "switch off the flag {t}"),
    "flag.meta_change": ("changed the description of the flag {t}", "change the flag {t}"),
    "sandbox.reset": ("rebuilt the sandbox's synthetic data", "rebuild the sandbox"),
    "audit.export": ("made an {t}", "export the audit log"),
    "environment.create": ("created the environment {t}", "create an environment"),
    "environment.change": ("changed the environment {t}", "change the environment {t}"),
    "team.create": ("created the team {t}", "create a team"),
    "team.change": ("changed the team {t}", "change the team {t}"),
    "user.create": ("created the user {t}", "create a user"),
    "user.access_change": ("changed the roles and teams of {t}", "change the access of {t}"),
    "approval_policy.create": ("added the approval policy {t}", "add an approval policy"),
    "approval_policy.change": ("changed the approval policy {t}", "change the approval policy {t}"),
    "quota_policy.create": ("added the quota {t}", "add a quota"),
    "quota_policy.change": ("changed the quota {t}", "change the quota {t}"),
    "approval.approve": ("approved {t}", "approve {t}"),
    "approval.reject": ("rejected {t}", "reject {t}"),
    "approval.cancel": ("cancelled {t}", "cancel {t}"),
}

_APPROVAL_LABEL = re.compile(r"^#(\d+) (.*) \(\w+\)$", re.DOTALL)


def _who(event: AuditEvent) -> str:
    label = event.actor_label or "someone"
    return "The system" if label.startswith("system (") else label


def _target(event: AuditEvent) -> str:
    """The object as a reader knows it: 'Spring EU buyers'; request 5 ('Archive …'); a batch label as is."""
    label = event.target_label or ""
    if event.target_type == "governance.approvalrequest":
        match = _APPROVAL_LABEL.match(label)
        summary = _base_summary(match.group(2)) if match else ""
        ident = match.group(1) if match else event.target_id
        return f"request {ident}" + (f" (“{summary}”)" if summary else "")
    if not label:
        return "it" if event.target_id else ""
    return _quoted(label) if event.target_id else label


def _phrase(action: str, target: str, *, done: bool) -> str:
    phrases = PHRASES.get(action)
    if phrases is None:
        text = f"did {action}" if done else f"do {action}"
        return f"{text} on {target}" if target else text
    return phrases[0 if done else 1].format(t=target).strip()


def _grantee(changes: Mapping[str, Any]) -> str:
    grantee = changes.get("grantee") or {}
    if isinstance(grantee, Mapping) and grantee:
        kind, name = next(iter(grantee.items()))
        return f"the {kind} {name}"
    return "someone"


def _details(event: AuditEvent) -> str:
    """What an allowed action changed, in a few words after the verb."""
    changes = event.changes or {}
    action = event.action
    if action == "audience.publish" and changes.get("version") is not None:
        return f" (version {changes['version']})"
    if action == "audience.rollback" and changes.get("to_version") is not None:
        return f" to version {changes['to_version']} (as version {changes.get('version')})"
    if action == "audience.edit" and changes.get("fields"):
        return ": " + ", ".join(str(name).replace("_", " ") for name in changes["fields"])
    if action == "audience.share":
        level = (changes.get("after") or {}).get("level")
        return f" with {_grantee(changes)}" + (f" ({level})" if level else "")
    if action == "audience.unshare":
        return f" from {_grantee(changes)}"
    if action == "audience.promote":
        source = changes.get("from") or {}
        return f" from {source.get('environment')}" if source.get("environment") else ""
    if action == "audience.copy":
        source = changes.get("from") or {}
        return f", a copy of {_quoted(source['name'])}" if source.get("name") else ""
    if action in ("suppression.change", "suppression.change_global"):
        return f": added {_number(changes.get('added') or 0)}, removed {_number(changes.get('removed') or 0)}"
    if action in ("approval.approve", "approval.reject"):
        after = changes.get("after") or {}
        text = ""
        if action == "approval.approve" and after.get("required"):
            text = f": {after.get('received')} of {after.get('required')} approvals"
            if after.get("state") == ApprovalState.APPROVED:
                text += ", so it is approved"
        if changes.get("comment"):
            text += f" — “{changes['comment']}”"
        return text
    return ""


def _reasons(event: AuditEvent) -> str:
    reasons = event.reasons if isinstance(event.reasons, list) else [str(event.reasons or "")]
    return " ".join(str(r) for r in reasons if r)


@register.filter
def event_words(event: AuditEvent) -> str:
    """One audit event as a sentence: "maria published 'Spring EU buyers' (version 3) — allowed",
    "tom tried to delete 'X' — denied: <reason>"."""
    who, target, action, outcome = _who(event), _target(event), event.action, event.outcome
    changes = event.changes or {}
    reasons = _reasons(event)

    if action in ("audience.published", "audience.rolled_back"):
        after = (changes.get("after") or {}).get("live_version") or {}
        counts = changes.get("counts") or {}
        how = "rolled back" if action == "audience.rolled_back" else "published"
        return (
            f"Version {after.get('number')} of {target} went live ({how} by {who}): adds "
            f"{plural(counts.get('added'), 'person', 'people')}, removes {_number(counts.get('removed') or 0)}; "
            f"{plural(counts.get('members'), 'member')} — {outcome_words(outcome)}"
        )
    if action == "approval.expire":
        return f"{target[:1].upper()}{target[1:]} expired: {reasons or 'not decided in time'}"
    if action == "approval.execute":
        start = f"{target[:1].upper()}{target[1:]}"
        if outcome == Outcome.FAILED:
            return f"{start} did not run (as {who}) — failed: {reasons}"
        return f"{start} ran as {who}" + (f": {reasons}" if reasons else "") + " — allowed"

    if outcome == Outcome.DENIED:
        return f"{who} tried to {_phrase(action, target, done=False)} — denied" + (f": {reasons}" if reasons else "")
    if outcome == Outcome.FAILED:
        return f"{who} tried to {_phrase(action, target, done=False)} — failed" + (f": {reasons}" if reasons else "")
    if outcome == Outcome.APPROVAL_REQUESTED:
        request = changes.get("approval_request")
        return f"{who} asked to {_phrase(action, target, done=False)} — waits for approval" + (
            f" (request {request})" if request else ""
        )
    return f"{who} {_phrase(action, target, done=True)}{_details(event)} — allowed"


OUTCOME_WORDS: dict[str, str] = {
    "allowed": "allowed",
    "denied": "denied",
    "failed": "failed",
    "approval_requested": "approval requested",
}


@register.filter
def outcome_words(outcome: str) -> str:
    return OUTCOME_WORDS.get(outcome, str(outcome))


JOB_KINDS = {
    "audience.publish": "Publish",
    "audience.rollback": "Rollback",
    "destination_push": "Push to a destination",
    "webhook_delivery": "Webhook delivery",
    "outbox_dispatch": "Event dispatch",
}


@register.filter
def job_words(kind: str) -> str:
    """A job's kind as a page names it: "Publish", "Push to a destination"."""
    return JOB_KINDS.get(kind, str(kind).replace("_", " ").replace(".", " ").capitalize())


# --- links ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _object_url(target_type: str, ident: str) -> str:
    from django.urls import NoReverseMatch, reverse

    names = {"audiences.audience": ("portal-audiences:detail", "audience_id"), **_APPROVAL_URL}
    if target_type not in names or not ident.isdigit():
        return ""
    name, kwarg = names[target_type]
    try:
        return reverse(name, kwargs={kwarg: int(ident)})
    except NoReverseMatch:
        return ""


_APPROVAL_URL = {"governance.approvalrequest": ("portal-approvals:detail", "approval_id")}


@register.simple_tag
def object_url(target_type: str, target_id: Any) -> str:
    """The portal page of an audit event's or a job's target, or "" when it has none."""
    return _object_url(str(target_type or ""), str(target_id or ""))
