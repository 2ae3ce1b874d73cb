"""python manage.py create_service_account NAME --owner USER --roles developer [--environment sandbox]"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from governance.access.selectors import environment_get
from governance.access.services import service_account_create
from governance.actors import Actor
from governance.models import Door
from marketerapi.problems import ApplicationError


class Command(BaseCommand):
    help = "Create a service account: an integration's own user with a person who answers for it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="Username of the person who answers for it.")
        parser.add_argument("--roles", default="developer", help="Comma-separated roles, e.g. developer.")
        parser.add_argument("--description", default="")
        parser.add_argument("--environment", default="sandbox", help="Where the creation is audited.")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = User.objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"No user {options['owner']!r}.")
        try:
            environment = environment_get(options["environment"])
            account = service_account_create(
                actor=Actor.system(environment, door=Door.CLI),
                username=options["name"],
                roles=[r.strip() for r in options["roles"].split(",") if r.strip()],
                description=options["description"],
                owner=owner,
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.detail or exc.title} {exc.hint}") from exc
        self.stdout.write(
            f"Created service account {account.user.username} (owner {owner.username}). Issue its token with:\n"
            f"  python manage.py issue_token {account.user.username} --environment {environment.slug}"
        )
