"""Writes of the billing app, one module per topic; this package re-exports the public ones.

Stripe is reached only through `billing.stripe_api`; no database transaction is held open
across a Stripe call (call Stripe, then save in `transaction.atomic`)."""

from .api_keys import (
    CreatedApiKey,
    CreatedPlatformKey,
    api_key_create,
    api_key_hash,
    api_key_revoke,
    api_key_touch,
    platform_key_create,
)
from .billing_state import (
    BillingChange,
    organization_billing_refresh,
    organization_for_subscription_refresh,
    subscription_sync,
)
from .catalog import (
    CatalogSyncResult,
    plan_product_id,
    stripe_catalog_sync,
    stripe_meter_ensure,
    stripe_one_time_price_ensure,
)
from .charges import (
    ChargeResult,
    payment_intent_find_by_metadata,
    payment_intent_off_session_create,
    payment_intent_status_get,
)
from .hosted import (
    HostedSession,
    checkout_session_create,
    payment_method_checkout_session_create,
    portal_session_create,
    subscription_checkout_session_create,
)
from .meters import stripe_meter_event_send, stripe_meter_usage_total
from .notices import (
    billing_notice_queue,
    billing_notice_send,
    billing_notices_dispatch_due,
    notice_recipients,
    organization_notice_recipients,
)
from .organizations import (
    customer_mirror_save,
    membership_set,
    organization_create,
    organization_customer_ensure,
    user_get_or_create,
)
from .payment_methods import (
    payment_method_attach,
    payment_method_checkout_complete,
    payment_method_detach,
    payment_method_resolve,
    payment_method_set_default,
    setup_intent_create,
)
from .reconcile import billing_stripe_drift_list
from .stripe_invoices import (
    stripe_invoice_create_one_off,
    stripe_invoice_mark_uncollectible,
    stripe_invoice_preview,
    stripe_invoice_retrieve_whole,
    stripe_invoice_void,
    stripe_invoices_for_customer,
)
from .subscription_periods import (
    PaidSubscriptionPeriod,
    subscription_invoice_period_get,
    subscription_paid_periods_recent,
)
from .subscriptions import (
    InvoicePreview,
    InvoicePreviewLine,
    plan_price_for_subscription,
    subscription_cancel,
    subscription_change,
    subscription_change_preview,
    subscription_create,
    subscription_resume,
    subscription_upcoming_invoice_get,
)
from .webhooks import (
    stripe_events_catch_up,
    stripe_test_clock_advance,
    stripe_test_clock_create,
    webhook_endpoint_register,
)

__all__ = [
    "BillingChange",
    "CatalogSyncResult",
    "ChargeResult",
    "CreatedApiKey",
    "CreatedPlatformKey",
    "HostedSession",
    "InvoicePreview",
    "InvoicePreviewLine",
    "PaidSubscriptionPeriod",
    "api_key_create",
    "api_key_hash",
    "api_key_revoke",
    "api_key_touch",
    "billing_notice_queue",
    "billing_notice_send",
    "billing_notices_dispatch_due",
    "billing_stripe_drift_list",
    "checkout_session_create",
    "customer_mirror_save",
    "membership_set",
    "notice_recipients",
    "organization_billing_refresh",
    "organization_create",
    "organization_customer_ensure",
    "organization_for_subscription_refresh",
    "organization_notice_recipients",
    "payment_intent_find_by_metadata",
    "payment_intent_off_session_create",
    "payment_intent_status_get",
    "payment_method_attach",
    "payment_method_checkout_complete",
    "payment_method_checkout_session_create",
    "payment_method_detach",
    "payment_method_resolve",
    "payment_method_set_default",
    "plan_price_for_subscription",
    "plan_product_id",
    "platform_key_create",
    "portal_session_create",
    "setup_intent_create",
    "stripe_catalog_sync",
    "stripe_events_catch_up",
    "stripe_invoice_create_one_off",
    "stripe_invoice_mark_uncollectible",
    "stripe_invoice_preview",
    "stripe_invoice_retrieve_whole",
    "stripe_invoice_void",
    "stripe_invoices_for_customer",
    "stripe_meter_ensure",
    "stripe_meter_event_send",
    "stripe_meter_usage_total",
    "stripe_one_time_price_ensure",
    "stripe_test_clock_advance",
    "stripe_test_clock_create",
    "subscription_cancel",
    "subscription_change",
    "subscription_change_preview",
    "subscription_checkout_session_create",
    "subscription_create",
    "subscription_invoice_period_get",
    "subscription_paid_periods_recent",
    "subscription_resume",
    "subscription_sync",
    "subscription_upcoming_invoice_get",
    "user_get_or_create",
    "webhook_endpoint_register",
]
