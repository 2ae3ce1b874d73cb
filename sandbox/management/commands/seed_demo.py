"""`manage.py seed_demo`: one demo user per role, so a new machine can be tried at once.

Every user's password is `demo`, so the command refuses to run unless the deployment
is a development one (DEBUG=1) or an explicit demo (MARKETERAPI_DEMO=1). Running it
again puts the users back as listed (password, roles, teams, staff flag); it touches
no other user.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from governance import roles

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
}
TEAMS = ("growth", "retention")


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
        User = get_user_model()
        role_groups = {group.name: group for group in Group.objects.filter(name__in=roles.ROLE_NAMES)}
        teams = {name: Group.objects.get_or_create(name=name)[0] for name in TEAMS}
        created = 0
        for username, (role, team, is_staff) in DEMO_USERS.items():
            user, was_created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.test"}
            )
            created += was_created
            user.set_password(PASSWORD)
            user.is_active = True
            user.is_staff = is_staff
            user.is_superuser = False
            user.save()
            # Exactly this role and team: a rerun undoes whatever was changed by hand.
            wanted = [role_groups[role]] + ([teams[team]] if team else [])
            user.groups.set(wanted)
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
