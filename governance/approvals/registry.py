"""Executors and fingerprints: how an approved action runs later, and how to tell that its
target changed while the request waited.

A domain app registers, in its AppConfig.ready() (so that every process has it, a Celery
worker included):

    register_executor("audience.archive", run_archive, fingerprint=audience_fingerprint)

`run_archive(execution)` receives an `Execution`: the requester as actor (door `task`),
the target loaded again, the change snapshot, the policy context to pass to
`policy.require` (it carries `approved_request`, so the approval rule is skipped), and the
`approval_refs` to put on the audit event. It returns a small JSON-able result or raises;
an ApplicationError's message and hint are shown on the failed request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.apps import apps

if TYPE_CHECKING:
    from governance.actors import Actor
    from governance.models import ApprovalRequest


@dataclass(frozen=True)
class Execution:
    """What an executor gets when the approved action runs."""

    request: ApprovalRequest
    actor: Actor
    target: Any
    change: dict[str, Any]
    approval_refs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def context(self) -> dict[str, Any]:
        """The policy context for `policy.require`: the request's own context (metrics such
        as reach) plus `approved_request`, which tells the policy the approval is done."""
        base = dict(self.change.get("context") or {})
        base["approved_request"] = self.request.pk
        return base


Executor = Callable[[Execution], "dict[str, Any] | None"]
Fingerprint = Callable[[Any], str]
Loader = Callable[["ApprovalRequest"], Any]


@dataclass(frozen=True)
class ExecutorSpec:
    action: str
    run: Executor
    fingerprint: Fingerprint | None = None
    load: Loader | None = None


_EXECUTORS: dict[str, ExecutorSpec] = {}
_discovered = False


class ExecutorMissing(LookupError):
    """No executor is registered for an action: a programming error, found when the
    request is filed rather than after people voted."""


def register_executor(
    action: str, run: Executor, *, fingerprint: Fingerprint | None = None, load: Loader | None = None
) -> ExecutorSpec:
    """Register how `action` runs once approved; re-registering the same function is harmless."""
    existing = _EXECUTORS.get(action)
    if existing is not None and existing.run is not run and _qualname(existing.run) != _qualname(run):
        raise ValueError(f"an executor for {action!r} is already registered ({_qualname(existing.run)})")
    spec = ExecutorSpec(action, run, fingerprint or (existing.fingerprint if existing else None), load)
    _EXECUTORS[action] = spec
    return spec


def register_fingerprint(action: str, fingerprint: Fingerprint) -> None:
    """Set the fingerprint function of an action whose executor is registered."""
    spec = executor_for(action)
    _EXECUTORS[action] = ExecutorSpec(action, spec.run, fingerprint, spec.load)


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _discover() -> None:
    """A fallback for executors still registered at import of a module that no AppConfig
    imports: import the URL conf once, whose API modules import every service that files
    approval requests. Today that is audiences/publishing/services.py (`audience.publish`,
    `audience.rollback`), which a Celery worker would not otherwise load; once every app
    registers its executors in its AppConfig.ready() (as governance does for
    `flag.disable_personalization`), this goes."""
    global _discovered
    if _discovered:
        return
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (importing the URL conf imports the API modules)
    _discovered = True


def executor_for(action: str) -> ExecutorSpec:
    spec = _EXECUTORS.get(action)
    if spec is None:
        _discover()
        spec = _EXECUTORS.get(action)
    if spec is None:
        raise ExecutorMissing(
            f"No executor is registered for {action!r}; register one with "
            "governance.approvals.register_executor before filing approval requests for it."
        )
    return spec


def has_executor(action: str) -> bool:
    try:
        executor_for(action)
    except ExecutorMissing:
        return False
    return True


def fingerprint_of(*parts: Any) -> str:
    """A stable SHA-256 over JSON-able parts, for fingerprint functions."""
    body = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def default_load(request: ApprovalRequest) -> Any:
    """The target by its `app_label.model` and id; None when it is gone or is no model."""
    if not request.target_type or "." not in request.target_type or not request.target_id:
        return None
    try:
        model = apps.get_model(request.target_type)
    except (LookupError, ValueError):
        return None
    return model._default_manager.filter(pk=request.target_id).first()


def _spec(action: str) -> ExecutorSpec | None:
    try:
        return executor_for(action)
    except ExecutorMissing:
        return None


def load_target(request: ApprovalRequest) -> Any:
    spec = _spec(request.action)
    loader = spec.load if spec is not None and spec.load is not None else default_load
    return loader(request)


def current_fingerprint(request: ApprovalRequest, target: Any) -> str | None:
    """The target's fingerprint now; None when the action has no fingerprint function or
    the request was filed without one (then staleness is not tracked)."""
    spec = _spec(request.action)
    if spec is None or spec.fingerprint is None or not request.target_fingerprint or target is None:
        return None
    return spec.fingerprint(target)


# --- what changed under a stale request ----------------------------------------------------------

ChangeDescriber = Callable[["ApprovalRequest", Any], "list[dict[str, Any]]"]
_DESCRIBERS: dict[str, ChangeDescriber] = {}


def register_change_describer(action: str, describe: ChangeDescriber) -> None:
    """How to say what changed in a request's target since it was filed: a list of
    `{"field", "requested", "now"}` comparing the request's snapshot (`change`) with the
    target now. Registered with the executor, in the app's AppConfig.ready()."""
    _DESCRIBERS[action] = describe


def what_changed(request: ApprovalRequest, target: Any) -> list[dict[str, Any]]:
    """What changed in the target since the request was filed (empty when the action says
    nothing more than that it changed)."""
    describe = _DESCRIBERS.get(request.action)
    if describe is None or target is None:
        return []
    return describe(request, target)
