from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from project.csv_export import csv_response
from project.teams import selectors, services
from project.teams.access import TeamRequest, team_view
from project.teams.activity import activity_rows, audit_rows, event_sentence
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


class AuditFilterForm(forms.Form):
    person = forms.CharField(required=False)
    action = forms.CharField(required=False, max_length=80)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def search(self) -> dict[str, Any]:
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {"actor_id": parse_id(data["person"]), "action": data["action"].strip(), "start": data["start"],
                "end": data["end"]}


@team_view(Role.ADMIN)
def audit_log(request: TeamRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    events = selectors.team_audit_search(team=request.team, **form.search())
    page = Paginator(events, selectors.AUDIT_PAGE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "rows": audit_rows(list(page.object_list)), "active": "audit",
               "actions": selectors.team_audit_actions(team=request.team),
               "people": selectors.team_members(team=request.team),
               "query": urlencode({k: v for k, v in request.GET.items() if v and k != "page"})}
    return render(request, "teams/audit_log.html", context)


@team_view(Role.ADMIN)
def audit_export(request: TeamRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    events = selectors.team_audit_search(team=request.team, **form.search()).iterator(chunk_size=2000)
    rows = ([e.created_at.isoformat(), e.actor.get_username() if e.actor else "", e.action, event_sentence(e),
             e.target, e.address or "", json.dumps(e.details, ensure_ascii=False, sort_keys=True)] for e in events)
    return csv_response(filename=f"audit-{request.team.slug}.csv",  # type: ignore[return-value]  # streamed
                        header=["time", "who", "action", "what", "object", "address", "details"], rows=rows)
