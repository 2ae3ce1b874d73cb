"""Sharing an audience with a person or a team, in the admin site.

Django-guardian's "Object permissions" pages, on the audience's admin page: an admin (or
a developer of the owning team, in a sandbox) shares an audience at `view` or `change`,
or takes the share back. Guardian's own pages would assign the permissions directly;
these call audience_share / audience_unshare, which ask the policy engine and audit
(door `admin`). docs/admin.md, "Sharing an audience".
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from guardian.admin import GuardedModelAdminMixin
from guardian.shortcuts import get_group_perms, get_user_perms

from audiences.admin import definitions as admin_audiences  # noqa: F401  (registers the AudienceAdmin extended here)
from audiences.definitions import services as audience_services
from audiences.models import Audience
from marketerapi.admin.site import admin_actor
from marketerapi.problems import ApplicationError


class ShareLevelForm(forms.Form):
    level = forms.ChoiceField(
        choices=[("none", "not shared"), ("view", "view"), ("change", "change (edit, publish)")],
        widget=forms.RadioSelect,
        help_text="A share of change lets them edit and publish it, never share it further.",
    )


class AudienceSharingMixin(GuardedModelAdminMixin):
    """Guardian's "Object permissions" pages for audiences, saving through the services."""

    def _may_share(self, request: HttpRequest) -> bool:
        return request.user.has_perm("audiences.share_audience")

    def obj_perms_manage_view(self, request: HttpRequest, object_pk: str) -> HttpResponse:
        if not self._may_share(request):
            return redirect("admin:index")
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request: HttpRequest, object_pk: str, user_id: str) -> HttpResponse:
        return self._manage_share(request, object_pk, "user", get_object_or_404(get_user_model(), pk=user_id))

    def obj_perms_manage_group_view(self, request: HttpRequest, object_pk: str, group_id: str) -> HttpResponse:
        return self._manage_share(request, object_pk, "team", get_object_or_404(Group, pk=group_id))

    def _manage_share(self, request: HttpRequest, object_pk: str, kind: str, grantee: Any) -> HttpResponse:
        if not self._may_share(request):
            return redirect("admin:index")
        audience = get_object_or_404(
            Audience.objects.select_related("environment", "owner_team"), pk=unquote(object_pk)
        )
        perms = set(get_user_perms(grantee, audience) if kind == "user" else get_group_perms(grantee, audience))
        current = "change" if "change_audience" in perms else "view" if "view_audience" in perms else "none"
        form = ShareLevelForm(request.POST or None, initial={"level": current})
        if request.method == "POST" and form.is_valid():
            level = form.cleaned_data["level"]
            name = grantee.get_username() if kind == "user" else grantee.name
            actor = admin_actor(request, audience.environment)
            try:
                if level == current:
                    messages.info(request, "Nothing to change.")
                elif level == "none":
                    audience_services.audience_unshare(actor=actor, audience=audience, **{kind: name})
                    messages.success(request, f"{audience.name} is no longer shared with the {kind} {name}.")
                else:
                    audience_services.audience_share(actor=actor, audience=audience, level=level, **{kind: name})
                    messages.success(request, f"{audience.name} is shared with the {kind} {name} ({level}).")
            except ApplicationError as exc:
                # On the field: guardian's group page shows field errors only.
                form.add_error("level", " ".join(p for p in (exc.detail or exc.title, exc.hint) if p))
            else:
                return redirect(request.get_full_path())
        context = self.get_obj_perms_base_context(request, audience)
        context["form"] = form
        context["user_obj" if kind == "user" else "group_obj"] = grantee
        # The admin's templates read current_app; HttpRequest does not declare it.
        request.current_app = self.admin_site.name  # type: ignore[attr-defined]
        template = (
            self.get_obj_perms_manage_user_template()
            if kind == "user"
            else (self.get_obj_perms_manage_group_template())
        )
        return render(request, template, context)


def _register_sharing() -> None:
    """Add the sharing pages to whatever AudienceAdmin the audiences admin registered."""
    base = type(admin.site._registry[Audience]) if admin.site.is_registered(Audience) else admin.ModelAdmin
    if admin.site.is_registered(Audience):
        admin.site.unregister(Audience)
    admin.site.register(Audience, type("AudienceAdmin", (AudienceSharingMixin, base), {"__module__": __name__}))


_register_sharing()
