from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from project.teams.services import AccountError, password_reset_to_random


class Command(BaseCommand):
    help = "Give a user a new random password and print it once (for a lost password, or the first login's)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            password = password_reset_to_random(username=options["username"])
        except AccountError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(
            f"New password for {options['username']}: {password}\n"
            "It is shown only once; change it under 'Password' after logging in."
        ))
