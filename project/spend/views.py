from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from project.csv_export import csv_response
from project.providers.models import ProviderConnection
from project.spend.budgets import BudgetInvalid, budget_delete, budget_save, month_spent_by_connection
from project.spend.forms import BudgetForm, ReconcileForm, UsageFilterForm
from project.spend.models import Budget
from project.spend.reconcile import reconcilable_connections, reconcile
from project.spend.selectors import UsageFilter, ledger_rows, usage_choices, usage_report
from project.teams.access import TeamRequest, team_view
from project.teams.models import Role


def _filter(request: TeamRequest) -> tuple[UsageFilterForm, UsageFilter]:
    form = UsageFilterForm(request.GET or None)
    usage_filter = form.usage_filter()
    # A person sees their own spend; owners and admins see everyone's.
    if not request.membership.can_manage:
        usage_filter = usage_filter.only_person(request.user.pk)
    return form, usage_filter


def _budgets(request: TeamRequest) -> list[dict[str, Any]]:
    budgets = {b.connection_id: b for b in Budget.objects.filter(team=request.team).select_related("connection")}
    by_connection = month_spent_by_connection(team_id=request.team.pk)
    rows = []
    for connection in [None, *ProviderConnection.objects.filter(team=request.team).order_by("name")]:
        connection_id = connection.pk if connection else None
        budget = budgets.get(connection_id)
        spent = (sum(by_connection.values(), Decimal(0)) if connection is None
                 else by_connection.get(connection_id, Decimal(0)))
        initial = ({"connection": connection_id or "", "amount_usd": budget.amount_usd, "hard_limit": budget.hard_limit,
                    "thresholds": ", ".join(str(t) for t in budget.thresholds)} if budget else
                   {"connection": connection_id or "", "thresholds": "50, 80, 100"})
        rows.append({"connection": connection, "budget": budget, "spent": spent, "form": BudgetForm(initial=initial),
                     "percent": int(spent * 100 / budget.amount_usd) if budget else None})
    return rows


@team_view()
def usage(request: TeamRequest) -> HttpResponse:
    form, usage_filter = _filter(request)
    report = usage_report(team=request.team, f=usage_filter)
    # The chosen filters as the options' values, so the template compares plain strings.
    chosen = {name: "" if value is None else str(value) for name, value in (
        ("connection", usage_filter.connection_id), ("person", usage_filter.person_id),
        ("assistant", usage_filter.assistant_id))}
    context = {"form": form, "filter": usage_filter, "report": report, "chosen": chosen,
               "choices": usage_choices(team=request.team, f=usage_filter, report=report),
               "export_query": urlencode({k: v for k, v in request.GET.items() if v}),
               "everyone": request.membership.can_manage,
               "budgets": _budgets(request) if request.membership.can_manage else []}
    return render(request, "spend/usage.html", context)


@team_view()
def usage_export(request: TeamRequest) -> HttpResponse:
    _, usage_filter = _filter(request)
    rows = ledger_rows(team=request.team, f=usage_filter)
    header = ["time", "feature", "connection", "person", "assistant", "version", "source", "source_id", "label",
              "model", "input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens", "calls", "pricing",
              "prices_per_1m", "cost_usd", "figure"]
    lines = ([e.occurred_at.isoformat(), e.feature, e.connection_name, e.person_name, e.assistant_name,
              e.version_number or "", e.source_kind, e.source_id or "", e.source_label, e.model, e.input_tokens,
              e.cached_tokens, e.output_tokens, e.reasoning_tokens, e.calls, e.pricing,
              " ".join(f"{k}={v}" for k, v in sorted(e.prices.items())),
              "" if e.cost_usd is None else e.cost_usd, "estimated" if e.estimated else "provider"]
             for e in rows)
    name = f"spend-{usage_filter.start:%Y%m%d}-{usage_filter.end:%Y%m%d}.csv"
    return csv_response(filename=name, header=header, rows=lines)  # type: ignore[return-value]  # streamed


@require_POST
@team_view(Role.ADMIN)
def budget_save_view(request: TeamRequest) -> HttpResponse:
    form = BudgetForm(request.POST)
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(str(message) for message in error))
        return redirect("usage")
    connection_id = form.connection_id()
    connection = (get_object_or_404(ProviderConnection, team=request.team, pk=connection_id)
                  if connection_id is not None else None)
    data = form.cleaned_data
    try:
        budget_save(team=request.team, connection=connection, amount_usd=data["amount_usd"],
                    thresholds=data["thresholds"], hard_limit=data["hard_limit"], actor=request.user)
    except BudgetInvalid as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Budget saved: ${data['amount_usd']:,.2f} a month for "
                                  f"{connection.name if connection else 'the team'}.")
    return redirect("usage")


@require_POST
@team_view(Role.ADMIN)
def budget_delete_view(request: TeamRequest, budget_id: int) -> HttpResponse:
    budget = get_object_or_404(Budget.objects.select_related("connection"), team=request.team, pk=budget_id)
    budget_delete(budget=budget, actor=request.user)
    messages.success(request, "Budget removed.")
    return redirect("usage")


@team_view(Role.ADMIN)
def reconciliation(request: TeamRequest) -> HttpResponse:
    """The ledger beside the provider's own costs, per day and model, for one connection."""
    form = ReconcileForm(request.GET)  # bound even when empty: no choice is the defaults
    connections = reconcilable_connections(team=request.team)
    context: dict[str, Any] = {"form": form, "connections": connections, "connection": None, "result": None}
    if form.is_valid():
        chosen = form.cleaned_data["connection_id"]
        if chosen is not None:
            # Only the team's own reconcilable connections: any other id is a 404.
            connection = next((c for c in connections if c.pk == chosen), None)
            if connection is None:
                raise Http404("No such connection.")
        else:
            connection = connections[0] if connections else None
        context["connection"] = connection
        context["start"], context["end"] = form.cleaned_data["start"], form.cleaned_data["end"]
        if connection is not None:
            context["result"] = reconcile(team=request.team, connection=connection, start=form.cleaned_data["start"],
                                          end=form.cleaned_data["end"])
    return render(request, "spend/reconciliation.html", context)
