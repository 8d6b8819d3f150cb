from __future__ import annotations

from typing import Any

from django import template

from project.spend.budgets import team_budget_bar

register = template.Library()


@register.inclusion_tag("spend/_budget_bar.html", takes_context=True)
def budget_bar(context: dict[str, Any]) -> dict[str, Any]:
    """The top bar's month-to-date spend against the team's budget."""
    team = context.get("current_team")
    if team is None:
        return {"bar": None}
    return {"bar": team_budget_bar(team=team)}
