"""`manage.py issue_token USERNAME --environment sandbox`: issue an API token from a shell.

The door for operators and developers before the portal's token page exists, and the
way scripts (benchmarks, smoke tests) get a token. It goes through the same service as
the API (`governance.access.services.token_issue`), as the system actor at the `cli` door, so
the token is audited like any other; the secret is printed once and only its hash is kept.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from governance.access.selectors import environment_get
from governance.access.services import token_issue
from governance.actors import Actor
from marketerapi.problems import ApplicationError


class Command(BaseCommand):
    help = "Issue an API token for a user in one environment; the secret is printed once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user the token acts as (e.g. demo-developer).")
        parser.add_argument(
            "--environment",
            default=None,
            help="The environment the token is bound to (sandbox, pilot, production, …). "
            f"Default: DEFAULT_ENVIRONMENT ({settings.DEFAULT_ENVIRONMENT}).",
        )
        parser.add_argument(
            "--name", default=None, help="A label to recognise the token by (default: 'cli: USERNAME')."
        )
        parser.add_argument(
            "--days",
            type=int,
            default=settings.API_TOKEN_DEFAULT_DAYS,
            help="Days until the token expires (default: API_TOKEN_DEFAULT_DAYS = %(default)s).",
        )
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            metavar="SCOPE",
            help="Repeat for each scope (read, write, publish, export, ingest, admin). "
            "Default: every scope the user's roles can use.",
        )
        parser.add_argument("--quiet", action="store_true", help="Print only the secret, for scripts.")

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        slug: str = options["environment"] or settings.DEFAULT_ENVIRONMENT
        days: int = options["days"]
        if days < 1:
            raise CommandError(f"--days={days}: a token must live at least one day.")

        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(
                f"There is no user {username!r}. Create one in the admin site or with "
                "`python manage.py createsuperuser`; on a development machine `python manage.py seed_demo` "
                "creates demo-developer and the other demo users."
            ) from None
        if not user.is_active:
            raise CommandError(f"The user {username!r} is not active; a token of theirs would be refused.")

        try:
            environment = environment_get(slug)
        except ApplicationError as exc:
            raise CommandError(f"{exc.detail} {exc.hint}") from None

        actor = Actor.system(environment, door="cli")
        try:
            issued = token_issue(
                actor=actor,
                user=user,
                name=options["name"] or f"cli: {username}",
                expires_at=timezone.now() + timedelta(days=days),
                scopes=options["scopes"],
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.detail or exc.title} {exc.hint}") from None

        if options["quiet"]:
            self.stdout.write(issued.secret)
            return
        token = issued.token
        expires = f"{token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never"
        self.stdout.write(
            f"Token {token.pk} ({token.name!r}) for {username} in {environment.slug}, "
            f"scopes {', '.join(token.scopes)}, expires {expires}:\n"
            f"\n    {issued.secret}\n\n"
            "This is the only time the secret is shown; only its hash is stored. Copy it now.\n"
            "Use it:\n"
            f'    curl -H "Authorization: Bearer {issued.secret}" {settings.SITE_URL}/api/v1/profiles/\n'
            f"The API is described at {settings.SITE_URL}/api/docs/."
        )
