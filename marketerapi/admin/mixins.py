"""What every app's admin shares, once: who acts, read-only and no-delete changelists, a
change form whose save calls a service, and admin actions that call a service per object.

The admin is a door like the API and the portal: it never writes governed state itself.
A ModelAdmin either shows a table read-only (`ReadOnlyAdminMixin`), or saves through a
service — in the form's `clean()` (`ServiceForm` + `ServiceFormAdminMixin`, so a refusal
lands on the offending field) or in `save_model()` (`ServiceAdminMixin`, a refusal comes
back as a message and the whole change rolls back). Actions run a service per selected
object with `for_each`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError

if TYPE_CHECKING:
    from governance.actors import Actor


def problem_text(exc: ApplicationError) -> str:
    """A refusal in one line for an admin message: what happened, then how to fix it."""
    return " ".join(part for part in (exc.detail or exc.title, exc.hint) if part)


class ReadOnlyAdminMixin:
    """A table the admin shows but never writes: machine-written or append-only rows."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NoDeleteMixin:
    """Governed configuration is switched off or archived through its service, never deleted."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def record_denial_again(exc: ApplicationError) -> None:
    """policy.require wrote the denial inside the admin's transaction, which the refusal
    rolled back; write it again now, outside it, so the attempt stays in the audit trail."""
    denial = getattr(exc, "denial", None)
    if denial is None:
        return
    from governance.audit import trail as audit
    from governance.models import Outcome

    actor, action, target, decision = denial
    with transaction.atomic():
        audit.record(actor, action, target, outcome=str(Outcome.DENIED), decision=decision)


class ServiceAdminMixin:
    """For admins whose save_model calls a service. A refusal the form could not foresee
    (the policy engine, a race) rolls the whole change back and comes back as an error
    message on the same page; a policy denial is recorded again after the rollback."""

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        except ApplicationError as exc:
            record_denial_again(exc)
            self.message_user(request, problem_text(exc), messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())


class ServiceForm(forms.ModelForm):
    """A model form whose clean() calls a service; `request` is set by ServiceFormAdminMixin.

    `refuse(exc)` puts each of a problem's errors on the field its pointer names (the rest,
    and every 403, on the form), so the person fixes the value where they typed it.
    """

    request: HttpRequest
    instance: Any
    result: Any = None

    def refuse(self, exc: ApplicationError) -> None:
        placed = False
        for error in exc.errors:
            field = str(error.get("pointer", "")).strip("/").split("/")[0]
            if field in self.fields:
                self.add_error(field, f"{error.get('message', '')} {error.get('hint', '')}".strip())
                placed = True
        if not placed or exc.status == 403:
            self.add_error(None, problem_text(exc))

    def _post_clean(self) -> None:
        # The service saved and validated; the model's own checks would only repeat them.
        if self.result is not None:
            return
        super()._post_clean()  # type: ignore[misc]


class ServiceFormAdminMixin:
    """Binds the request to a ServiceForm, and leaves saving to the form's service call."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        return type(form.__name__, (form,), {"request": request})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        for note in getattr(form, "notes", []):
            self.message_user(request, note, messages.INFO)  # type: ignore[attr-defined]


def for_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Any],
    call: Callable[[Actor, Any], str | None],
    *,
    environment_of: Callable[[Any], Any] = lambda obj: obj.environment,
    done: str | None = None,
) -> int:
    """Run an admin action's service once per object, as the signed-in person in the object's
    environment. Each refusal becomes a warning naming the object; each success the line
    `call` returns, or one summary `done.format(count)`. Returns how many succeeded."""
    succeeded = 0
    for obj in objects:
        try:
            line = call(admin_actor(request, environment_of(obj)), obj)
        except ApplicationError as exc:
            model_admin.message_user(request, f"{obj}: {problem_text(exc)}", messages.WARNING)
            continue
        succeeded += 1
        if done is None and line:
            model_admin.message_user(request, line, messages.SUCCESS)
    if done is not None and succeeded:
        model_admin.message_user(request, done.format(succeeded), messages.SUCCESS)
    return succeeded
