"""What a definition's own values must be, checked the same for every door: its metadata
(name, purpose, description as trimmed text within limits; a known channel) and an owner
team the actor may give it to. Each refusal names its field with a JSON pointer and a hint."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.models import Group

from audiences.definitions.errors import NotTeamMember
from audiences.definitions.selectors import teams
from audiences.models import Channel
from audiences.rules import InvalidRules, RulesCheck, rules_check
from governance.access import objectperms
from governance.actors import Actor
from governance.roles import ADMIN
from marketerapi.problems import InvalidInput

if TYPE_CHECKING:
    from governance.models import Environment

T = TypeVar("T")


def invalid(pointer: str, code: str, message: str, hint: str) -> InvalidInput:
    """A 422 `invalid_input` about one field."""
    return InvalidInput(
        message, hint=hint, errors=[{"pointer": pointer, "code": code, "message": message, "hint": hint}]
    )


def team_names(names: list[str]) -> str:
    shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
    return shown or "none (ask an admin to add you to a team)"


def picks_any_team(actor: Actor) -> bool:
    """Admins and the system may give an audience to any team; others to their own."""
    return actor.user is None or ADMIN in actor.roles


def resolve_team(actor: Actor, name: str | None, *, pointer: str = "/owner_team") -> Group:
    """The owner team: a team (not a role) the actor belongs to; admins and the system may
    pick any. Without a name, the actor's only team."""
    is_admin = picks_any_team(actor)
    own = sorted(objectperms.teams_of(actor.user), key=lambda g: g.name) if actor.user is not None else []
    if name is None or not str(name).strip():
        if len(own) == 1:
            return own[0]
        raise invalid(
            pointer,
            "required",
            "Say which team owns the audience." if own else "You belong to no team that could own the audience.",
            f"Send owner_team: one of your teams ({team_names([g.name for g in own])})."
            if own
            else "Ask an admin to add you to a team; teams own audiences.",
        )
    team = teams().filter(name=str(name).strip()).first()
    if team is None:
        choices = (
            [g.name for g in own] if not is_admin else list(teams().order_by("name").values_list("name", flat=True))
        )
        raise invalid(
            pointer,
            "unknown_team",
            f"There is no team {name!r}.",
            f"Use one of: {team_names(choices)}. Teams are groups; roles such as analyst are not teams.",
        )
    if not is_admin and all(g.pk != team.pk for g in own):
        raise NotTeamMember(
            f"You are not in the team {team.name!r}.",
            hint=f"Pick one of your teams ({team_names([g.name for g in own])}), or ask an admin.",
            errors=[
                {
                    "pointer": pointer,
                    "code": "not_team_member",
                    "message": f"You are not in the team {team.name!r}.",
                    "hint": "Pick one of your teams.",
                }
            ],
        )
    return team


def check_text(values: dict[str, Any]) -> dict[str, Any]:
    """Trim and check the metadata every door sends (the API's serializer checks it first).
    Every bad field is refused at once: one 422 listing each."""
    out = dict(values)
    errors: list[dict[str, Any]] = []
    limits = {"name": 120, "purpose": 200, "description": 10_000}
    for name, limit in limits.items():
        if name not in out:
            continue
        value = out[name]
        if not isinstance(value, str) or not value.strip():
            errors.append(_error(f"/{name}", "blank", f"{name} must not be empty.", f"Say in a few words the {name}."))
        elif len(value.strip()) > limit:
            errors.append(_error(f"/{name}", "max_length", f"{name} is longer than {limit} characters.", "Shorten it."))
        else:
            out[name] = value.strip()
    if "channel" in out and out["channel"] not in Channel.values:
        errors.append(
            _error(
                "/channel",
                "invalid_choice",
                f"{out['channel']!r} is not a channel.",
                f"Use one of: {', '.join(Channel.values)}.",
            )
        )
    if len(errors) == 1:
        raise InvalidInput(errors[0]["message"], hint=errors[0]["hint"], errors=errors)
    if errors:
        raise InvalidInput(f"{len(errors)} values are not valid.", errors=errors)
    return out


def _error(pointer: str, code: str, message: str, hint: str) -> dict[str, Any]:
    return {"pointer": pointer, "code": code, "message": message, "hint": hint}


class Problems:
    """The 422 problems of one request, gathered so that it is refused once with every one
    of them (PRODUCT.md §7: validation reports every problem at once).

    `check(call, …)` runs one check and keeps its `invalid_input` errors (anything else, a
    403 say, is raised at once); `rules(…)` keeps every problem of the rules. `raise_all()`
    refuses with 422 `invalid_input` listing them all when any value other than the rules
    is wrong — the rules' problems among them, pointers under /rules — or with 422
    `invalid_rules` when only the rules are.
    """

    def __init__(self) -> None:
        self.input: list[dict[str, Any]] = []
        self.rule_problems: list[dict[str, Any]] = []

    def check(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return call(*args, **kwargs)
        except InvalidInput as error:
            self.input.extend(error.errors or [_error("", error.code, error.detail, error.hint)])
            return None

    def rules(self, environment: Environment, rules: Any, *, self_id: int | None = None) -> RulesCheck:
        checked = rules_check(environment, rules, self_id=self_id)
        self.rule_problems.extend(checked.problems)
        return checked

    def raise_all(self) -> None:
        if self.input:
            raise every_problem(self.input, self.rule_problems)
        if self.rule_problems:
            count = len(self.rule_problems)
            raise InvalidRules(
                f"The rules have {count} problem{'s' if count != 1 else ''}; nothing was saved or computed.",
                errors=self.rule_problems,
            )


def every_problem(errors: list[dict[str, Any]], rule_problems: list[dict[str, Any]]) -> InvalidInput:
    """One 422 `invalid_input` for bad values and, with them, the problems of the rules."""
    found = [*errors, *rule_problems]
    count = len(found)
    detail = f"{count} problem{'s' if count != 1 else ''} in the request; nothing was saved or computed."
    if rule_problems:
        detail += f" {len(rule_problems)} of them in the rules (pointers under /rules)."
    return InvalidInput(detail, errors=found)
