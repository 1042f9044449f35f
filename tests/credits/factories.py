from decimal import Decimal

import factory

from credits.models import CreditPack, CreditPrice


class CreditPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditPrice
        django_get_or_create = ("event_name",)

    event_name = factory.Sequence(lambda n: f"EVENT_{n}")
    credits_per_unit = Decimal("1")
    category = "test"


class CreditPackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CreditPack
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"pack-{n}")
    name = factory.LazyAttribute(lambda o: f"{o.credits} credits")
    credits = Decimal("1000")
    amount = 1000
    currency = "usd"
