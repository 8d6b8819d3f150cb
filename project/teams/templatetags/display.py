"""Display filters every page shares, so one thing is always written one way."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()

_MICRO = Decimal("0.000001")


def format_usd(value: object) -> str:
    """A cost in dollars, the one way every page writes it: to the millionth of a dollar,
    without trailing zeros past the cents ("$1.75", "$0.000061", "$0.00"); "" for no value."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ""
    if not amount.is_finite():
        return ""
    rounded = amount.quantize(_MICRO, rounding=ROUND_HALF_UP)
    if rounded == 0 and amount > 0:
        return "under $0.000001"
    sign = "-" if rounded < 0 else ""
    text = f"{abs(rounded):f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{fraction}"


@register.filter
def usd(value: object) -> str:
    return format_usd(value)


@register.filter
def words_for(code: object, names: object) -> object:
    """The words for a machine code from a {code: words} table, the code itself when unknown:
    {{ error.kind|words_for:error_kinds }}."""
    if isinstance(names, dict) and isinstance(code, str):
        return names.get(code, code.replace("_", " "))
    return code
