"""Money and credits as people read them, in the active locale: the one place the pages (and
e-mails) format amounts. Babel (CLDR data) knows each currency's symbol, its minor units and
each locale's separators; amounts stay exact (Decimal, never float).

    {% load money %}
    {{ price.amount|money:price.currency }}     2900, "usd"  -> $29.00     (de: 29,00 $)
    {{ summary.balance|credits }}               Decimal("1500.5000") -> 1,500.5
    {{ 0.42|percent }}                          -> 42%
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision
from django import template
from django.conf import settings
from django.utils import translation

register = template.Library()

CREDITS_PATTERN = "#,##0.####"  # credits have up to 4 decimal places; none shown when whole


def current_locale() -> str:
    """The locale of the request being served (Django's active language), e.g. `en_US`."""
    return translation.to_locale(translation.get_language() or settings.LANGUAGE_CODE)


def minor_to_major(minor_units: int, currency: str) -> Decimal:
    """`2950, "usd"` -> `Decimal("29.50")`; `500, "jpy"` -> `Decimal("500")`."""
    digits = get_currency_precision((currency or "usd").upper())
    return Decimal(int(minor_units)).scaleb(-digits)


def format_money(minor_units, currency: str = "usd", locale: str | None = None) -> str:
    """Integer minor units of `currency`, in the locale's currency format."""
    code = (currency or "usd").upper()
    return format_currency(minor_to_major(minor_units, code), code, locale=locale or current_locale())


def format_credits(value, locale: str | None = None) -> str:
    """A number of credits (Decimal or decimal string), grouped, with the decimals it has."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return format_decimal(number, format=CREDITS_PATTERN, locale=locale or current_locale())


@register.filter
def money(minor_units, currency: str = "usd") -> str:
    if minor_units is None or minor_units == "":
        return ""
    return format_money(minor_units, currency)


@register.filter
def credits(value) -> str:
    if value is None or value == "":
        return ""
    return format_credits(value)


@register.filter
def percent(ratio) -> str:
    """A ratio (0.42) as a percentage in the locale (`42%`)."""
    if ratio is None or ratio == "":
        return ""
    return format_percent(Decimal(str(ratio)), locale=current_locale())
