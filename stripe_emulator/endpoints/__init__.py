"""The `/v1` endpoints, one module per section of Stripe's API reference.

Importing this package registers every handler in the route table (`routing.py`). A handler reads
its parameters, calls the rules, and returns the object; `render.py` turns it into the response.
The rules live in the modules beside this package (`payments`, `invoicing`, `subscriptions`,
`checkout`, `portal`, `meters`, `disputes`, `timeline`, `catalog`, `customers`, `webhooks`).

Where to find an endpoint (``POST /v1/subscriptions`` is ``endpoints/subscriptions.py``):

======================================  =====================================
``/v1/account``, ``/v1/accounts``       ``accounts.py``
``/v1/balance``, ``/v1/balance_transactions``  ``balance.py``
``/v1/payouts``                         ``payouts.py``
``/v1/charges``                         ``charges.py``
``/v1/checkout/sessions``               ``checkout.py``
``/v1/billing_portal/...``              ``billing_portal.py``
``/v1/billing/meters``, ``meter_events``, ``meter_event_adjustments``  ``billing_meters.py``
``/v1/customers``                       ``customers.py``
``/v1/disputes``                        ``disputes.py``
``/v1/events``                          ``events.py``
``/v1/invoices``, ``/v1/invoice_payments``  ``invoices.py``
``/v1/invoiceitems``                    ``invoiceitems.py``
``/v1/payment_intents``                 ``payment_intents.py``
``/v1/payment_methods``                 ``payment_methods.py``
``/v1/prices``                          ``prices.py``
``/v1/products``                        ``products.py``
``/v1/refunds``                         ``refunds.py``
``/v1/setup_intents``                   ``setup_intents.py``
``/v1/subscriptions``                   ``subscriptions.py``
``/v1/subscription_items``              ``subscription_items.py``
``/v1/test_helpers/test_clocks``        ``test_helpers.py``
``/v1/webhook_endpoints``               ``webhook_endpoints.py``
``/v1/<resource>/search``               ``search.py``
======================================  =====================================

Endpoint modules import `common.py` and the rule modules, never each other (import-linter checks).
"""

from . import (  # noqa: F401  (each module registers its handlers)
    accounts,
    balance,
    billing_meters,
    billing_portal,
    charges,
    checkout,
    customers,
    disputes,
    events,
    invoiceitems,
    invoices,
    payment_intents,
    payment_methods,
    payouts,
    prices,
    products,
    refunds,
    search,
    setup_intents,
    subscription_items,
    subscriptions,
    test_helpers,
    webhook_endpoints,
)
