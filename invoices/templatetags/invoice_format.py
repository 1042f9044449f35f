from decimal import Decimal

from django import template

from credits.formatting import credits_str

register = template.Library()


@register.filter
def quantity(value) -> str:
    """`Decimal("12.5000")` -> `12.5`; None -> empty."""
    if value is None:
        return ""
    return credits_str(Decimal(value))


@register.filter
def signed_credits(value) -> str:
    """Credits with their sign: `+1500`, `-12.5`."""
    if value is None:
        return ""
    text = credits_str(Decimal(value))
    return text if text.startswith("-") or Decimal(value) == 0 else f"+{text}"
