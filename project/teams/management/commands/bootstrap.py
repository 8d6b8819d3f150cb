from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from project.providers.models import ProviderConnection, ProviderKind
from project.providers.services import connection_save, sandbox_connection_ensure
from project.teams.models import Team
from project.teams.services import one_time_password, team_create


class Command(BaseCommand):
    help = (
        "On the very first start, create a first team and its owner and print the login once. "
        "Gives the first team a provider connection: OPENAI_API_KEY's if set, else the sandbox's."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        with transaction.atomic():
            first_start = not user_model.objects.exists()
            if first_start:
                password = one_time_password()
                # A plain user: the team's own pages manage the team. /admin/ shows every team,
                # so it is for operators only (manage.py createoperator).
                owner = user_model.objects.create_user(username="admin", email="", password=password)
                team_create(name="My team", owner=owner)
        team = Team.objects.order_by("pk").first()
        if team is not None and not ProviderConnection.objects.filter(team=team).exists():
            api_key = os.environ.get("OPENAI_API_KEY", "")
            if api_key:
                connection_save(
                    team=team, actor=None, kind=ProviderKind.OPENAI, name="OpenAI", api_key=api_key,
                    base_url=os.environ.get("OPENAI_BASE_URL", ""), make_default=True,
                )
                self.stdout.write("Added an OpenAI connection from OPENAI_API_KEY.")
        if team is not None and settings.SANDBOX_URL:
            sandbox_connection_ensure(team=team, sandbox_url=settings.SANDBOX_URL)
        if first_start:
            line = "=" * 64
            self.stdout.write(self.style.SUCCESS(
                f"\n{line}\nFirst start: created team 'My team' and its owner.\n"
                f"  Log in at {settings.SITE_URL}/login/\n  username: admin\n  password: {password}\n"
                f"This password is shown only once; change it under 'Password' after logging in.\n"
                f"Lost it? python manage.py setpassword admin\n{line}\n"
            ))
