"""Writes of the credits app, one module per topic; this package re-exports the public ones.

- `ledger`: consume, grant, adjust, expire, reverse; the consumption order; idempotency. Never
  calls Stripe (it holds the account lock; `make lint` checks its imports).
- `purchases`: credit purchases on Stripe (off-session, Checkout), granted once when paid.
- `auto_refill`: the refill settings and the task body that charges the saved card.
- `subscription_credits`: the plan's included credits for each paid period.
- `holds`: credit holds (reservations): hold, settle, release, expire. Never calls Stripe.
- `reconcile`: purchases whose state here disagrees with Stripe's.
"""

from .auto_refill import (
    auto_refill_payment_failed,
    auto_refill_requires_action,
    auto_refill_run,
    auto_refill_set,
    auto_refills_stale_dispatch,
)
from .holds import (
    HoldResult,
    credit_hold_create,
    credit_hold_release,
    credit_hold_settle,
    credit_holds_expire,
)
from .ledger import (
    AdjustResult,
    ConsumeResult,
    GrantResult,
    Ledger,
    actor_label,
    credit_account_lock,
    credit_account_settings_update,
    credit_adjust,
    credit_balance_set,
    credit_consume,
    credit_consumption_reverse,
    credit_grant,
    credit_grant_expire_now,
    credit_grants_expire,
    request_fingerprint,
)
from .purchases import (
    ChargeOutcome,
    FulfilResult,
    PackPurchase,
    credit_pack_checkout_session_create,
    credit_pack_purchase,
    credit_purchase_charge,
    credit_purchase_create,
    credit_purchase_failed,
    credit_purchase_fulfil,
    credit_purchase_reverse,
    purchase_payment_intent_create,
    stripe_credits_checkout_session_create,
)
from .reconcile import (
    credit_purchases_stripe_drift_list,
    reconcile_run,
    stripe_state_restore,
    unusual_consumption_alerts,
)
from .subscription_credits import (
    subscription_credits_catch_up,
    subscription_credits_for_invoice,
    subscription_credits_grant,
    trial_credits_take_back,
)

__all__ = [
    "AdjustResult",
    "ChargeOutcome",
    "ConsumeResult",
    "FulfilResult",
    "GrantResult",
    "HoldResult",
    "Ledger",
    "PackPurchase",
    "actor_label",
    "auto_refill_payment_failed",
    "auto_refill_requires_action",
    "auto_refill_run",
    "auto_refill_set",
    "auto_refills_stale_dispatch",
    "credit_account_lock",
    "credit_account_settings_update",
    "credit_adjust",
    "credit_balance_set",
    "credit_consume",
    "credit_consumption_reverse",
    "credit_grant",
    "credit_grant_expire_now",
    "credit_grants_expire",
    "credit_hold_create",
    "credit_hold_release",
    "credit_hold_settle",
    "credit_holds_expire",
    "credit_pack_checkout_session_create",
    "credit_pack_purchase",
    "credit_purchase_charge",
    "credit_purchase_create",
    "credit_purchase_failed",
    "credit_purchase_fulfil",
    "credit_purchase_reverse",
    "credit_purchases_stripe_drift_list",
    "purchase_payment_intent_create",
    "reconcile_run",
    "request_fingerprint",
    "stripe_credits_checkout_session_create",
    "stripe_state_restore",
    "subscription_credits_catch_up",
    "subscription_credits_for_invoice",
    "subscription_credits_grant",
    "trial_credits_take_back",
    "unusual_consumption_alerts",
]
