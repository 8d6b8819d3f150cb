from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from project.teams import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="teams/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(template_name="teams/password_change.html"),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="teams/password_change_done.html"),
        name="password_change_done",
    ),
    path("teams/none/", views.no_team, name="no_team"),
    path("teams/new/", views.team_create, name="team_create"),
    path("teams/switch/", views.team_switch, name="team_switch"),
    path("settings/members/", views.members, name="members"),
    path("settings/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("settings/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("settings/audit/", views.audit_log, name="audit_log"),
    path("settings/audit/export.csv", views.audit_export, name="audit_export"),
    path("settings/invitations/", views.invitation_create, name="invitation_create"),
    path("settings/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("invite/<str:token>/", views.invitation_accept, name="invitation_accept"),
]
