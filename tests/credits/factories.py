from decimal import Decimal

import factory

from credits.models import CreditPack, CreditPrice


class CreditPriceFactory(factory.django.DjangoModelFactory):
    """Creates the price, or sets it when the seed data (migrations) already has the event."""

    class Meta:
        model = CreditPrice

    event_name = factory.Sequence(lambda n: f"EVENT_{n}")
    credits_per_unit = Decimal("1")
    category = "test"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        event_name = kwargs.pop("event_name")
        price, _ = model_class.objects.update_or_create(event_name=event_name, defaults=kwargs)
        return price


class CreditPackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditPack
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"pack-{n}")
    name = factory.LazyAttribute(lambda o: f"{o.credits} credits")
    credits = Decimal("1000")
    amount = 1000
    currency = "usd"
