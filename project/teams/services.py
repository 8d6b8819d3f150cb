"""Writes for teams, memberships and invitations."""

from __future__ import annotations

import secrets
from typing import Any

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from project.teams.audit_context import request_address
from project.teams.models import AuditEvent, Invitation, Membership, Role, Team


class TeamRuleError(Exception):
    """A change that would break a team rule (for example, removing the last owner)."""


def audit_record(*, team: Team, actor: User | None, action: str, target: str = "", **details: Any) -> None:
    AuditEvent.objects.create(team=team, actor=actor, action=action, target=target[:200], details=details,
                              address=request_address.get())


def _unique_slug(name: str) -> str:
    base = slugify(name)[:120] or "team"
    slug, n = base, 1
    while Team.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def team_create(*, name: str, owner: User) -> Team:
    team = Team.objects.create(name=name.strip(), slug=_unique_slug(name))
    Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    audit_record(team=team, actor=owner, action="team.created", target=team.name)
    return team


def _owner_count(team: Team) -> int:
    return Membership.objects.filter(team=team, role=Role.OWNER).count()


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor: User) -> Membership:
    if role not in Role.values:
        raise TeamRuleError(f"Unknown role {role!r}.")
    # Lock the team's owner rows so two admins demoting the last two owners at once cannot both succeed.
    list(Membership.objects.select_for_update().filter(team=membership.team, role=Role.OWNER))
    membership.refresh_from_db()
    if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(membership.team) <= 1:
        raise TeamRuleError("A team needs at least one owner: make someone else an owner first.")
    old_role = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        team=membership.team, actor=actor, action="member.role_changed",
        target=membership.user.get_username(), old=old_role, new=role,
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    list(Membership.objects.select_for_update().filter(team=membership.team, role=Role.OWNER))
    if membership.role == Role.OWNER and _owner_count(membership.team) <= 1:
        raise TeamRuleError("The last owner cannot be removed.")
    audit_record(team=membership.team, actor=actor, action="member.removed", target=membership.user.get_username())
    membership.delete()


def invitation_create(
    *, team: Team, email: str, role: str, invited_by: User, inviter_role: str
) -> tuple[Invitation, str]:
    """Create an invitation and email its link. Returns the invitation and the link
    (shown once to the inviter too, for teams without working email)."""
    if role not in Role.values:
        raise TeamRuleError(f"Unknown role {role!r}.")
    if role == Role.OWNER and inviter_role != Role.OWNER:
        raise TeamRuleError("Only an owner can invite another owner.")
    token, token_hash = Invitation.new_token()
    invitation = Invitation.objects.create(team=team, email=email, role=role, token_hash=token_hash, invited_by=invited_by)
    link = settings.SITE_URL + reverse("invitation_accept", args=[token])
    send_mail(
        subject=f"You are invited to {team.name} on Switchboard",
        message=(
            f"{invited_by.get_username()} invited you to join {team.name} as {role}.\n\n"
            f"Accept within 7 days: {link}\n"
        ),
        from_email=None,
        recipient_list=[email],
    )
    audit_record(team=team, actor=invited_by, action="invitation.created", target=email, role=role)
    return invitation, link


class InvitationError(Exception):
    pass


def invitation_is_for(invitation: Invitation, user: User) -> bool:
    """An invitation is accepted only by the account of the address it was sent to:
    the link may be forwarded or seen by someone else."""
    return bool(user.email) and user.email.strip().casefold() == invitation.email.strip().casefold()


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    invitation = (
        Invitation.objects.select_for_update().select_related("team").filter(token_hash=Invitation.hash_token(token)).first()
    )
    if invitation is None or not invitation.is_usable:
        raise InvitationError("This invitation link is invalid, expired or already used.")
    if not invitation_is_for(invitation, user):
        raise InvitationError(f"This invitation is for {invitation.email}, not for your account's address.")
    membership, created = Membership.objects.get_or_create(
        team=invitation.team, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(team=invitation.team, actor=user, action="invitation.accepted", target=invitation.email, new_member=created)
    return membership


def invitation_revoke(*, invitation: Invitation, actor: User) -> None:
    audit_record(team=invitation.team, actor=actor, action="invitation.revoked", target=invitation.email)
    invitation.delete()


@transaction.atomic
def invitation_signup(*, token: str, user: User) -> Membership:
    """A new account made through an invitation link: its email is the invited address."""
    invitation = Invitation.objects.filter(token_hash=Invitation.hash_token(token)).first()
    if invitation is None:
        raise InvitationError("This invitation link is invalid, expired or already used.")
    user.email = invitation.email
    user.save()
    return invitation_accept(token=token, user=user)


def user_create(*, username: str, password: str, email: str = "") -> User:
    return get_user_model().objects.create_user(username=username, email=email, password=password)


class AccountError(Exception):
    """An account command cannot do what it was asked; the message says why."""


def one_time_password() -> str:
    """A password shown once (first start, createoperator, setpassword), to be changed at the first login."""
    return secrets.token_urlsafe(12)


@transaction.atomic
def operator_create(*, username: str, email: str = "") -> str:
    """A staff superuser for /admin/, in no team. Returns its one-time password."""
    users = get_user_model().objects
    if users.filter(username=username).exists():
        raise AccountError(f"A user named {username!r} already exists; choose another name for the operator.")
    password = one_time_password()
    users.create_superuser(username=username, email=email, password=password)
    return password


def password_reset_to_random(*, username: str) -> str:
    """Set a new random password and return it. Also lifts a login lockout of the user."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise AccountError(f"No user named {username!r}.")
    password = one_time_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    axes_reset(username=user.get_username())
    return password
