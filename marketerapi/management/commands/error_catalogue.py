"""`python manage.py error_catalogue [--check]`: write docs/errors.md from the code, or fail
when it is stale (marketerapi/catalogue.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marketerapi.catalogue import build, catalogue_path, render


class Command(BaseCommand):
    help = "Write docs/errors.md (every problem code, its status, title, hint and where it is raised)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true", help="Fail if docs/errors.md is not up to date.")

    def handle(self, *args: Any, check: bool = False, **options: Any) -> None:
        text = render(build())
        path = catalogue_path()
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                raise CommandError(f"{path} is stale: run `python manage.py error_catalogue` and commit it.")
            self.stdout.write(f"{path} is up to date.")
            return
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"Wrote {path} ({text.count(chr(10)) - 12} codes).")
