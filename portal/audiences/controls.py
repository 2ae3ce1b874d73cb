"""What a person may do with an audience, as its pages show it: each action offered (with
the approval it will wait for), or disabled with the reason and who can — and, for the
audience's action bar, each reason said once for the buttons it disables.

Nothing here decides: `can()` (portal/web.py) asks the policy engine without recording, and
the services ask again, for real, when the person acts. The few things a page knows before
the service does (an approval already open, an archived audience) are said the service's
way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from audiences.models import Audience, AudienceState
from audiences.publishing import services as publish
from governance import policy
from governance.actors import Actor
from governance.approvals.selectors import open_request_id
from governance.approvals.steps import describe_steps
from portal.web import Permission, can

COPY = "audience.copy"


@dataclass(frozen=True)
class Control:
    """One action of a page: offered, or shown disabled with the reason and who can."""

    allowed: bool
    reason: str = ""
    hint: str = ""
    # Set when the action is allowed but waits for approvals first (the notice to show).
    approval_note: str = ""
    # The policy's description of the action ("Publish audiences"), which a role refusal
    # starts with; an action bar says the rest once for every button it disables.
    what: str = ""
    # In an action bar: the id of the one line that says why (ActionBar), else "".
    reason_id: str = ""

    @classmethod
    def of(cls, permission: Permission, approval_note: str = "") -> Control:
        if not permission.allowed:
            return cls(False, permission.reason, permission.hint, what=permission.what)
        return cls(True, approval_note=approval_note or approval_note_of(permission))

    @classmethod
    def refused(cls, reason: str, hint: str = "") -> Control:
        return cls(False, reason, hint)


def approval_note_of(permission: Permission, verb: str = "This") -> str:
    if not permission.needs_approval:
        return ""
    count = permission.approvals or len(permission.approver_roles) or 1
    who = describe_steps(permission.approver_roles) if permission.approver_roles else "an approver"
    if count == 1:
        return f"{verb} needs 1 approval from {who}."
    return f"{verb} needs {count} approvals: {who}."


# --- the actions on one audience ---------------------------------------------------------------


def archived(audience: Audience, *, copyable: bool) -> Control:
    """Every change of an archived audience is refused the same way (one line in the bar)."""
    return Control.refused(
        f"“{audience.name}” is archived already: archived audiences are kept for the record and cannot be "
        "edited, published, rolled back or archived again.",
        "Copy it into your team to start a new draft from its rules."
        if copyable
        else "Its versions and history stay readable.",
    )


def copy_control(actor: Actor, audience: Audience) -> Control:
    """Copy into my team as a draft: whoever may create audiences here, whoever owns it."""
    return Control.of(can(actor, COPY, audience))


def publish_control(actor: Actor, audience: Audience, *, copyable: bool = False) -> Control:
    """Publish: allowed, waiting for approval (with the notice), or why not.

    The publish policy depends on the reach, which only publishing computes; the page asks
    with the live version's reach when there is one, and otherwise names the threshold."""
    if audience.state == AudienceState.ARCHIVED:
        return archived(audience, copyable=copyable)
    live = audience.live_version
    context = {"reach": live.members} if live is not None and live.members is not None else {}
    permission = can(actor, publish.PUBLISH, audience, context)
    if permission.allowed:
        # The service refuses a second publish while one waits for approval: not offered, with why.
        pending = open_request_id(action=publish.PUBLISH, target=audience)
        if pending is not None:
            return Control.refused(
                f"Publishing “{audience.name}” waits for approval already (request {pending}).",
                "Follow it in Approvals; its requester may cancel it there to publish again.",
            )
    if not permission.allowed or permission.needs_approval or actor.environment.is_sandbox:
        return Control.of(permission, approval_note_of(permission, "Publishing this"))
    # The policy that would apply to the largest reach says whether any threshold exists here.
    rule = policy.applicable_approval_policy(actor.environment, publish.PUBLISH, {"reach": sys.maxsize})
    if rule is None:
        return Control.of(permission)
    count = len(rule.steps)
    who = describe_steps(rule.steps)
    approvals = "1 approval" if count == 1 else f"{count} approvals"
    if rule.metric and rule.threshold is not None:
        note = (
            f"Publishing needs {approvals} from {who} when the {rule.metric} is above {rule.threshold:,}; "
            "the reach is counted when you publish."
        )
    else:
        note = f"Publishing this needs {approvals} from {who}."
    return Control(True, approval_note=note)


def is_deleted_not_archived(audience: Audience) -> bool:
    """A draft never published is deleted; anything else is archived."""
    return audience.state == AudienceState.DRAFT and audience.live_version_id is None


def delete_control(actor: Actor, audience: Audience, *, copyable: bool = False) -> Control:
    if audience.state == AudienceState.ARCHIVED:
        return archived(audience, copyable=copyable)
    if is_deleted_not_archived(audience):
        return Control.of(can(actor, "audience.delete", audience))
    permission = can(actor, "audience.archive", audience)
    if permission.allowed and permission.needs_approval:
        # The service refuses a second request while one is open: not offered, with why.
        pending = open_request_id(action="audience.archive", target=audience)
        if pending is not None:
            return Control.refused(
                f"Archiving “{audience.name}” waits for approval already (request {pending}).",
                "Follow it in Approvals; its requester may cancel it there to file a new one.",
            )
    return Control.of(permission, approval_note_of(permission, "Archiving it"))


def edit_control(actor: Actor, audience: Audience, *, copyable: bool = False) -> Control:
    if audience.state == AudienceState.ARCHIVED:
        return archived(audience, copyable=copyable)
    return Control.of(can(actor, "audience.edit", audience))


def rollback_control(actor: Actor, audience: Audience) -> Control:
    if audience.state == AudienceState.ARCHIVED:
        return archived(audience, copyable=can(actor, COPY, audience).allowed)
    permission = can(actor, publish.ROLLBACK, audience)
    return Control.of(permission, approval_note_of(permission, "Rolling back"))


# --- an action bar: each reason once -------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """Why some buttons of a bar are disabled, said once: "Edit, Publish and Archive need
    one of the roles: …", with the hint."""

    id: str
    labels: list[str]
    text: str
    hint: str


def _joined(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def _core(control: Control) -> str:
    """The reason without the action's own name when it starts with it (a role refusal:
    "Publish audiences needs one of the roles: …" → "needs one of the roles: …")."""
    if control.what and control.reason.startswith(control.what + " "):
        return control.reason[len(control.what) + 1 :]
    return ""


def _sentence(labels: list[str], core: str, reason: str) -> str:
    if not core:
        return f"{_joined(labels)}: {reason}"
    if len(labels) > 1:
        for singular, plural in (("needs ", "need "), ("is ", "are ")):
            if core.startswith(singular):
                core = plural + core[len(singular) :]
                break
    return f"{_joined(labels)} {core}"


def action_bar(prefix: str, controls: Sequence[tuple[str, str, Control]]) -> tuple[dict[str, Control], list[Reason]]:
    """The bar's controls (key, label, control) with each disabled one pointing at the one
    line that says why (`reason_id`), and those lines: buttons refused for the same reason —
    the same roles missing, another team's audience, an archived one — share one line."""
    groups: dict[tuple[str, str], list[tuple[str, str, Control]]] = {}
    for key, label, control in controls:
        if control.allowed:
            continue
        core = _core(control)
        groups.setdefault((core or control.reason, control.hint), []).append((key, label, control))
    shown = {key: control for key, _, control in controls}
    reasons = []
    for number, ((_, hint), members) in enumerate(groups.items(), start=1):
        reason_id = f"{prefix}-reason-{number}"
        labels = [label for _, label, _ in members]
        first = members[0][2]
        reasons.append(Reason(reason_id, labels, _sentence(labels, _core(first), first.reason), hint))
        for key, _, control in members:
            shown[key] = replace(control, reason_id=reason_id)
    return shown, reasons
