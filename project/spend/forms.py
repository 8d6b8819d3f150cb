from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from project.spend.budgets import BudgetInvalid, parse_thresholds
from project.spend.selectors import MAX_DAYS, UsageFilter

DEFAULT_DAYS = 30


def _optional_id(value: str) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


class UsageFilterForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    connection = forms.CharField(required=False)
    person = forms.CharField(required=False)
    assistant = forms.CharField(required=False)
    model = forms.CharField(required=False, max_length=200)
    feature = forms.CharField(required=False, max_length=20)
    stack = forms.ChoiceField(required=False, choices=[("feature", "feature"), ("model", "model")])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        today = timezone.now().date()
        end: date = cleaned.get("end") or today
        start: date = cleaned.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise forms.ValidationError("The start date is after the end date.")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    def usage_filter(self) -> UsageFilter:
        """The filter asked for; the last 30 days when the form was not valid."""
        if not self.is_valid():
            today = timezone.now().date()
            return UsageFilter(start=today - timedelta(days=DEFAULT_DAYS - 1), end=today)
        c = self.cleaned_data
        return UsageFilter(start=c["start"], end=c["end"], connection_id=_optional_id(c["connection"]),
                           person_id=_optional_id(c["person"]), assistant_id=_optional_id(c["assistant"]),
                           model=c["model"].strip(), feature=c["feature"].strip(), stack_by=c["stack"] or "feature")


class BudgetForm(forms.Form):
    connection = forms.CharField(required=False)  # empty: the team's own budget
    amount_usd = forms.DecimalField(label="Monthly amount (USD)", min_value=Decimal("0.01"),
                                    max_value=Decimal("9999999999"), decimal_places=2)
    thresholds = forms.CharField(label="Alert at (% of the amount)", required=False, initial="50, 80, 100",
                                 max_length=100)
    hard_limit = forms.BooleanField(label="Stop new work once it is used up", required=False)

    def clean_thresholds(self) -> list[int]:
        try:
            return parse_thresholds(self.cleaned_data.get("thresholds") or "")
        except BudgetInvalid as error:
            raise forms.ValidationError(str(error)) from error

    def connection_id(self) -> int | None:
        return _optional_id(self.cleaned_data.get("connection") or "")


class ReconcileForm(forms.Form):
    """Which connection and days to reconcile: the last 7 days unless asked."""

    connection = forms.CharField(required=False)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        end: date = cleaned.get("end") or timezone.now().date()
        start: date = cleaned.get("start") or end - timedelta(days=6)
        if start > end:
            raise forms.ValidationError("The start date is after the end date.")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        cleaned["start"], cleaned["end"] = start, end
        cleaned["connection_id"] = _optional_id(cleaned.get("connection") or "")
        return cleaned
