"""`manage.py seed_demo`: one demo user per role, so a new machine can be tried at once.

Every user's password is `demo`, so the command refuses to run unless the deployment
is a development one (DEBUG=1) or an explicit demo (MARKETERAPI_DEMO=1). Running it
again puts the users back as listed (password, roles, teams, staff flag); it touches
no other user. Users, teams and their changes go through governance's services
(governance/configuration/services.py) as the system at the shell: audited, door `cli`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from governance import roles
from governance.actors import Actor
from governance.configuration import services as config_services
from governance.models import Door, Environment

PASSWORD = "demo"  # noqa: S105 - demo accounts only; the command refuses to run in production

# username → (role, team or None, is_staff). Staff users reach the admin site; what they
# may do there comes from their role group's permissions.
DEMO_USERS: dict[str, tuple[str, str | None, bool]] = {
    "demo-analyst": (roles.ANALYST, None, False),
    "demo-operator": (roles.CAMPAIGN_OPERATOR, "growth", False),
    "demo-operator2": (roles.CAMPAIGN_OPERATOR, "retention", False),
    "demo-approver": (roles.APPROVER, None, False),
    "demo-approver2": (roles.APPROVER, None, False),
    "demo-compliance": (roles.COMPLIANCE_REVIEWER, None, False),
    "demo-developer": (roles.DEVELOPER, "growth", True),
    "demo-admin": (roles.ADMIN, None, True),
    "demo-marketing-ops": (roles.MARKETING_OPS, None, False),
}
TEAMS = ("growth", "retention")


def _environment() -> Environment:
    environment = (
        Environment.objects.filter(slug=settings.DEFAULT_ENVIRONMENT).first()
        or Environment.objects.order_by("id").first()
    )
    if environment is None:
        raise CommandError("There is no environment yet; run `python manage.py migrate`.")
    return environment


class Command(BaseCommand):
    help = "Create the demo users (password 'demo'), one per role. Development and demo deployments only."

    def handle(self, *args: Any, **options: Any) -> None:
        if not (settings.DEBUG or settings.MARKETERAPI_DEMO):
            raise CommandError(
                "seed_demo creates users whose password is 'demo', so it runs only on a development "
                "(DEBUG=1) or demo (MARKETERAPI_DEMO=1) deployment. Neither is set here."
            )
        missing = [name for name in roles.ROLE_NAMES if not Group.objects.filter(name=name).exists()]
        if missing:
            raise CommandError(f"The role groups {', '.join(missing)} do not exist; run `python manage.py migrate`.")

        created = self._seed()
        self.stdout.write(self.style.SUCCESS(f"Demo users ready ({created} new, {len(DEMO_USERS) - created} reset)."))
        self.stdout.write(self._instructions())

    @transaction.atomic
    def _seed(self) -> int:
        # Through the services, as the system at the shell (door `cli`): each new user, team,
        # password reset and access change is decided by the policy and audited, in the
        # default environment's trail (people and teams belong to no environment).
        actor = Actor.system(_environment(), door=Door.CLI)
        for name in TEAMS:
            if not Group.objects.filter(name=name).exists():
                config_services.team_save(actor=actor, team=Group(name=name))
        created = 0
        for username, (role, team, is_staff) in DEMO_USERS.items():
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User(username=username, email=f"{username}@example.test")
                user.set_password(PASSWORD)
                config_services.user_create(actor=actor, user=user)
                created += 1
            elif not user.check_password(PASSWORD):
                config_services.user_password_set(actor=actor, user=user, password=PASSWORD)
            # Exactly this role and team: a rerun undoes whatever was changed by hand
            # (user_access_set writes nothing when nothing differs).
            config_services.user_access_set(
                actor=actor,
                user=user,
                roles=[role],
                teams=[team] if team else [],
                is_active=True,
                is_staff=is_staff,
                is_superuser=False,
            )
        return created

    def _instructions(self) -> str:
        site = settings.SITE_URL
        width = max(len(name) for name in DEMO_USERS)
        lines = [
            "",
            f"Sign in with any of these users; the password is '{PASSWORD}':",
        ]
        for username, (role, team, is_staff) in DEMO_USERS.items():
            extra = ", ".join(filter(None, [f"team {team}" if team else "", "admin site" if is_staff else ""]))
            lines.append(f"  {username:<{width}}  {role}{f' ({extra})' if extra else ''}")
        lines += [
            "",
            f"  Portal:     {site}/login/",
            f"  Admin site: {site}/admin/   (demo-developer, demo-admin)",
            f"  API docs:   {site}/api/docs/",
            "",
            "An API token for the sandbox (the secret is printed once):",
            "  python manage.py issue_token demo-developer --environment sandbox",
            f'  curl -H "Authorization: Bearer mk_sandbox_…" {site}/api/v1/profiles/',
        ]
        return "\n".join(lines)
