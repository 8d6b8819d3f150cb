from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from project.teams import selectors, services
from project.teams.access import TeamRequest, team_view
from project.teams.activity import activity_rows
from project.teams.forms import InvitationForm, RoleForm, TeamForm
from project.teams.middleware import SESSION_TEAM_KEY
from project.teams.models import Role
from project.user_input import parse_id


def login_locked_out(request: HttpRequest, original_response: object = None, credentials: object = None) -> HttpResponse:
    """django-axes calls this instead of the login view's answer once an account or an
    address has failed too often: the login page again, saying why and for how long."""
    hours = settings.AXES_COOLOFF_TIME
    context = {"form": AuthenticationForm(request), "locked_out": True, "cooloff_hours": hours,
               "next": request.POST.get("next", "") if request.method == "POST" else ""}
    return render(request, "teams/login.html", context, status=429)


@team_view()
def home(request: TeamRequest) -> HttpResponse:
    events = list(selectors.team_audit_events(team=request.team, limit=10))
    return render(request, "teams/home.html", {"events": activity_rows(events)})


@login_required
def no_team(request: HttpRequest) -> HttpResponse:
    if getattr(request, "membership", None) is not None:
        return redirect("home")
    return render(request, "teams/no_team.html", {"form": TeamForm()})


@login_required
def team_create(request: HttpRequest) -> HttpResponse:
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = services.team_create(name=form.cleaned_data["name"], owner=request.user)  # type: ignore[arg-type]
        request.session[SESSION_TEAM_KEY] = team.pk
        messages.success(request, f"Team {team.name} created.")
        return redirect("home")
    return render(request, "teams/team_create.html", {"form": form})


@login_required
@require_POST
def team_switch(request: HttpRequest) -> HttpResponse:
    team_id = parse_id(request.POST.get("team_id"))
    if team_id is None:
        raise Http404("No such team.")
    membership = selectors.membership_for(user=request.user, team_id=team_id)  # type: ignore[arg-type]
    if membership is None:
        raise Http404("No such team.")
    request.session[SESSION_TEAM_KEY] = membership.team_id
    messages.info(request, f"Switched to {membership.team.name}.")
    return redirect("home")


@team_view()
def members(request: TeamRequest) -> HttpResponse:
    context = {
        "members": selectors.team_members(team=request.team),
        "invitations": selectors.team_pending_invitations(team=request.team) if request.membership.can_manage else [],
        "invite_form": InvitationForm(),
        "roles": Role.choices,
    }
    return render(request, "teams/members.html", context)


@team_view(Role.ADMIN)
@require_POST
def member_role(request: TeamRequest, membership_id: int) -> HttpResponse:
    membership = selectors.team_membership_get(team=request.team, membership_id=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
    elif form.cleaned_data["role"] == Role.OWNER and not request.membership.has_role(Role.OWNER):
        messages.error(request, "Only an owner can make someone an owner.")
    elif membership.role == Role.OWNER and not request.membership.has_role(Role.OWNER):
        messages.error(request, "Only an owner can change another owner's role.")
    else:
        try:
            services.membership_change_role(membership=membership, role=form.cleaned_data["role"], actor=request.user)
            messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display()}.")
        except services.TeamRuleError as error:
            messages.error(request, str(error))
    return redirect("members")


@team_view(Role.ADMIN)
@require_POST
def member_remove(request: TeamRequest, membership_id: int) -> HttpResponse:
    membership = selectors.team_membership_get(team=request.team, membership_id=membership_id)
    if membership.role == Role.OWNER and not request.membership.has_role(Role.OWNER):
        messages.error(request, "Only an owner can remove an owner.")
        return redirect("members")
    try:
        services.membership_remove(membership=membership, actor=request.user)
        messages.success(request, f"{membership.user.get_username()} was removed from the team.")
    except services.TeamRuleError as error:
        messages.error(request, str(error))
    return redirect("members")


@team_view(Role.ADMIN)
@require_POST
def invitation_create(request: TeamRequest) -> HttpResponse:
    form = InvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid email address and role.")
        return redirect("members")
    try:
        _, link = services.invitation_create(
            team=request.team, email=form.cleaned_data["email"], role=form.cleaned_data["role"],
            invited_by=request.user, inviter_role=request.membership.role,
        )
    except services.TeamRuleError as error:
        messages.error(request, str(error))
        return redirect("members")
    messages.success(request, f"Invitation sent to {form.cleaned_data['email']}. Link (shown once): {link}")
    return redirect("members")


@team_view(Role.ADMIN)
@require_POST
def invitation_revoke(request: TeamRequest, invitation_id: int) -> HttpResponse:
    invitation = selectors.team_invitation_get(team=request.team, invitation_id=invitation_id)
    services.invitation_revoke(invitation=invitation, actor=request.user)
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("members")


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = selectors.invitation_by_token(token=token)
    if invitation is None or not invitation.is_usable:
        return render(request, "teams/invitation_invalid.html", status=404)
    signup_form: UserCreationForm[User] | None = None
    if not request.user.is_authenticated:
        signup_form = UserCreationForm(request.POST or None)
    elif not services.invitation_is_for(invitation, request.user):
        return render(request, "teams/invitation_other_address.html", {"invitation": invitation}, status=403)
    if request.method == "POST":
        try:
            if signup_form is not None:
                if not signup_form.is_valid():
                    return render(request, "teams/invitation_accept.html", {"invitation": invitation, "form": signup_form})
                user = signup_form.save(commit=False)
                membership = services.invitation_signup(token=token, user=user)
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            else:
                membership = services.invitation_accept(token=token, user=request.user)  # type: ignore[arg-type]
        except services.InvitationError as error:
            messages.error(request, str(error))
            return redirect("home")
        request.session[SESSION_TEAM_KEY] = membership.team_id
        messages.success(request, f"Welcome to {membership.team.name}.")
        return redirect("home")
    return render(request, "teams/invitation_accept.html", {"invitation": invitation, "form": signup_form})
