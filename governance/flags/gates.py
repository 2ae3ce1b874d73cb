"""Feature gates for views: `FlagRequired("name")` for DRF views and `@flag_required("name")`
for function views and portal pages. Both read the flag through the one evaluation
(governance/flags/rollout.py), so a person sees the same answer through every door.

Refusal: 403 problem+json `feature_disabled` in the API; in portal pages the 403 page with
the same title and hint.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from waffle.models import Flag

from governance.flags.errors import FeatureDisabled, turn_on_hint
from governance.flags.rollout import evaluate

if TYPE_CHECKING:
    from governance.actors import Actor


def _refusal(name: str) -> FeatureDisabled:
    return FeatureDisabled(
        f"The feature behind the flag {name!r} is not enabled for you yet.", hint=turn_on_hint(name), flag=name
    )


def require_flag(actor: Actor, name: str) -> None:
    """Refuse (403 `feature_disabled`, its hint naming the flag) unless flag `name` is on
    for the actor — for a capability that depends on the input (a campaign's channel).
    A capability that is an action of its own names the flag in its policy row instead
    (`Action(..., flag=...)`), and the policy engine refuses the same way."""
    from governance.flags.selectors import flag_active_for

    if not actor.is_system and not flag_active_for(name, actor):
        raise _refusal(name)


def FlagRequired(name: str) -> type:
    """A DRF permission class (named like one, though a factory) that lets a request
    through only when flag `name` is on for the caller:
    `permission_classes = [IsAuthenticated, FlagRequired("new_preview")]`.
    Refusal: 403 problem+json `feature_disabled` with a hint."""
    from rest_framework.permissions import BasePermission

    class _FlagRequired(BasePermission):
        flag_name = name

        def has_permission(self, request: Any, view: Any) -> bool:
            user = getattr(request, "user", None)
            if not evaluate(Flag.get(name), user).active:
                raise _refusal(name)
            return True

    _FlagRequired.__name__ = _FlagRequired.__qualname__ = f"FlagRequired[{name}]"
    return _FlagRequired


def flag_required(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a view (a function, or a method of a class-based view) so it runs only when
    flag `name` is on for the signed-in user. In DRF views the refusal is a
    `feature_disabled` problem; in portal pages a 403 page with the same title and hint."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = next((a for a in args[:2] if hasattr(a, "META")), None)
            user = getattr(request, "user", None)
            if evaluate(Flag.get(name), user).active:
                return view(*args, **kwargs)
            return _refuse(request, name)

        return wrapper

    return decorate


def _refuse(request: Any, name: str) -> Any:
    from rest_framework.request import Request

    error = _refusal(name)
    if request is None or isinstance(request, Request):
        raise error
    from django.http import JsonResponse

    from marketerapi.problems import PROBLEM_CONTENT_TYPE

    if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
        return JsonResponse(error.as_problem(), status=error.status, content_type=PROBLEM_CONTENT_TYPE)
    from django.conf import settings
    from django.shortcuts import render

    from marketerapi.middleware import current_request_id

    # The core's error page (ERROR_PAGE_TEMPLATE), never a template of the portal by name.
    context = {"status": 403, "title": error.title, "hint": error.hint, "request_id": current_request_id()}
    return render(request, settings.ERROR_PAGE_TEMPLATE, context, status=403)
