from decimal import Decimal

from django import template

register = template.Library()

ZERO_DECIMAL_CURRENCIES = {"jpy", "krw", "vnd", "clp", "pyg", "ugx", "xaf", "xof"}


@register.filter
def money(minor_units, currency: str = "usd") -> str:
    """`2950|money:"usd"` -> `29.50 USD`: integer minor units shown exactly, never through float."""
    currency = (currency or "usd").lower()
    if currency in ZERO_DECIMAL_CURRENCIES:
        return f"{int(minor_units)} {currency.upper()}"
    return f"{Decimal(int(minor_units)) / 100:.2f} {currency.upper()}"
