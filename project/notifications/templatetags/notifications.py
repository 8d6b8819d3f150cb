from __future__ import annotations

from typing import Any

from django import template

from project.notifications.selectors import team_unread_notification_count

register = template.Library()


@register.inclusion_tag("notifications/_bell.html", takes_context=True)
def notification_bell(context: dict[str, Any]) -> dict[str, Any]:
    team = context.get("current_team")
    request = context.get("request")
    user = getattr(request, "user", None)
    if team is None or user is None or not user.is_authenticated:
        return {"unread": 0}
    return {"unread": team_unread_notification_count(team=team, user=user)}
