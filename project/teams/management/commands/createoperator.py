from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from project.teams.services import AccountError, operator_create


class Command(BaseCommand):
    help = (
        "Create an operator: a staff account for /admin/, separate from every team (it belongs to none). "
        "Prints a one-time password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            password = operator_create(username=options["username"], email=options["email"])
        except AccountError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Operator {options['username']} created. One-time password: {password}\n"
            "Log in at /admin/ and change it there."
        ))
