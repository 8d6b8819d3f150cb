"""Writes: tell a team something, mark what a person has read."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from project.notifications.models import Notification, NotificationsSeen
from project.teams.models import Team

logger = logging.getLogger(__name__)


def notification_send(*, team: Team, text: str, link: str = "",
                      email_to: User | Sequence[User] | None = None) -> Notification:
    """Record a notification for the team; with email_to, also mail that person (or each of
    those people) after the commit, so no mail announces something rolled back; a mail
    server that is down is logged, never an error for the caller."""
    note = Notification.objects.create(team=team, text=text[:500], link=link)
    people = [email_to] if isinstance(email_to, User) else list(email_to or ())
    for address in [person.email for person in people if person.email]:

        def send(address: str = address) -> None:
            try:
                send_mail(subject=text[:120], message=f"{text}\n\n{link}", from_email=None, recipient_list=[address])
            except OSError as error:
                logger.warning("could not email %s: %s", address, error)

        transaction.on_commit(send)
    return note


def notifications_mark_read(*, team: Team, user: User) -> None:
    """This person has read everything the team has been told so far (their colleagues
    have not, until they look)."""
    NotificationsSeen.objects.update_or_create(user=user, team=team, defaults={"until": timezone.now()})
