"""News for the whole team (a job ended, a budget was reached), read or not per person."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from project.teams.models import Team


class Notification(models.Model):
    """News for the whole team (a job ended). Each person has read it or not: see
    NotificationsSeen."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notifications")
    text = models.CharField(max_length=500)
    link = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        db_table = "jobs_app_notification"  # made before the platform owned notifications
        indexes = [models.Index(fields=["team", "created_at"], name="notification_team_time")]

    def __str__(self) -> str:
        return self.text


class NotificationsSeen(models.Model):
    """How far one person has read their team's notifications: everything made after
    `until` is unread for them, whatever their colleagues have read."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField()

    class Meta:
        db_table = "jobs_app_notificationsseen"
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="notifications_seen_once")]

    def __str__(self) -> str:
        return f"{self.user_id} read team {self.team_id} up to {self.until}"
