"""The admin site of platform engineers: staff users with the admin or developer role.

Django's default site lets in every active staff user and then shows what their model
permissions allow. Here staff status alone is not enough: the admin site shows unmasked
PII and changes governed configuration, so it is for the roles PRODUCT.md §4 gives it to
(admin, and developer for tokens, service accounts, destinations and webhooks).
Superusers (operators at a shell) keep access. Installed in settings.INSTALLED_APPS as
`marketerapi.admin.apps.MarketerAdminConfig` in place of `django.contrib.admin`.

The index page is a dashboard of what needs a platform engineer in the environment they
act in (marketerapi/admin/dashboard.py): it reads every app's state, so it sits above the
apps, here in the door plumbing, and no app imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from governance.limits.signin import ThrottledSignInForm

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ADMIN_SITE_ROLES = frozenset({"admin", "developer"})

# Cached on the request: every admin page asks for it (the header, the dashboard, actors).
_ENVIRONMENT_ATTR = "_marketerapi_admin_environment"


def admin_environment(request: HttpRequest) -> Any:
    """The environment of an admin change to an object that has none (users, teams, flags,
    service accounts): the one the person switched to in the portal, else the default."""
    from governance.access.selectors import SESSION_ENVIRONMENT_KEY
    from governance.models import Environment

    session = getattr(request, "session", None)
    slug = (session.get(SESSION_ENVIRONMENT_KEY) if session is not None else None) or settings.DEFAULT_ENVIRONMENT
    cached = getattr(request, _ENVIRONMENT_ATTR, None)
    if cached is not None and cached[0] == slug:
        return cached[1]
    environment = Environment.objects.filter(slug=slug).first() or Environment.objects.order_by("id").first()
    try:
        setattr(request, _ENVIRONMENT_ATTR, (slug, environment))
    except AttributeError:  # a request-like object that takes no attributes
        pass
    return environment


def admin_actor(request: HttpRequest, environment: Any = None) -> Any:
    """The signed-in person acting through the admin door, in `environment` (the object's
    own) or, for objects without one, admin_environment(request)."""
    from governance.actors import Actor, client_ip
    from governance.models import Door

    actor = Actor(
        # The admin site lets in signed-in staff only (has_permission): never a system actor.
        user=cast("User", request.user),
        environment=environment if environment is not None else admin_environment(request),
        door=str(Door.ADMIN),
        ip=client_ip(request),
        request_id=getattr(request, "request_id", ""),
    )
    # The request log reads the environment from here (marketerapi.middleware.RequestLogMiddleware).
    request.marketerapi_actor = actor  # type: ignore[attr-defined]
    from marketerapi import logs

    logs.bind(actor=actor.label, environment=getattr(actor.environment, "slug", "-"), door=str(Door.ADMIN))
    return actor


def may_use_admin(user: Any) -> bool:
    """Active staff with the admin or developer role, or a superuser (an operator at a shell)."""
    if not (user.is_active and user.is_staff):
        return False
    return bool(user.is_superuser or user.groups.filter(name__in=ADMIN_SITE_ROLES).exists())


class AdminSignInForm(ThrottledSignInForm, AdminAuthenticationForm):
    """The admin's sign-in: a person whose password is right but who has no admin access is
    told so, and sent to the portal, instead of "enter the correct username and password"."""

    def confirm_login_allowed(self, user: Any) -> None:
        AuthenticationForm.confirm_login_allowed(self, user)  # inactive accounts: Django's message
        if not may_use_admin(user):
            raise ValidationError(
                format_html(
                    "The account {} has no access to the admin site: it is for platform engineers (the admin "
                    'and developer roles). Marketers sign in to the <a href="{}">portal</a>.',
                    user.get_username(),
                    settings.LOGIN_URL,
                ),
                code="no_admin_access",
            )


class MarketerAdminSite(admin.AdminSite):
    site_header = "marketerapi administration"
    site_title = "marketerapi admin"
    index_title = "Platform administration"
    index_template = "admin/marketerapi/index.html"
    login_form = AdminSignInForm

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        if self.has_permission(request):
            # Changes to objects without an environment are decided and audited here.
            environment = admin_environment(request)
            if environment is not None:
                context["site_header"] = f"{self.site_header} · acting in {environment.slug}"
        return context

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        # Asked several times per page (the view, the header, the index): one query per request.
        cached = getattr(request, "_marketerapi_admin_site_ok", None)
        if cached is not None and cached[0] == user.pk:
            return bool(cached[1])
        allowed = may_use_admin(user)
        try:
            request._marketerapi_admin_site_ok = (user.pk, allowed)  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return allowed

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        """The app list, with the dashboard of the environment the person acts in above it."""
        from marketerapi.admin.dashboard import dashboard

        environment = admin_environment(request)
        context = {"dashboard": dashboard(request, environment) if environment is not None else None}
        return super().index(request, {**context, **(extra_context or {})})
