from django.urls import path

from . import api

ORG = "organizations/<uuid:org>/credits"

urlpatterns = [
    path(ORG, api.CreditSummaryApi.as_view(), name="credits"),
    path(f"{ORG}/consume", api.CreditConsumeApi.as_view(), name="credits-consume"),
    path(f"{ORG}/grant", api.CreditGrantApi.as_view(), name="credits-grant"),
    path(f"{ORG}/transactions", api.CreditTransactionListApi.as_view(), name="credits-transactions"),
    path(
        f"{ORG}/transactions/<uuid:transaction_id>/reverse",
        api.CreditTransactionReverseApi.as_view(),
        name="credits-transaction-reverse",
    ),
    path(f"{ORG}/daily", api.CreditDailyApi.as_view(), name="credits-daily"),
    path(f"{ORG}/auto-refill", api.CreditAutoRefillApi.as_view(), name="credits-auto-refill"),
    path(f"{ORG}/purchase", api.CreditPurchaseApi.as_view(), name="credits-purchase"),
    path(
        "organizations/<uuid:org>/checkout-sessions",
        api.CheckoutSessionApi.as_view(),
        name="checkout-session",
    ),
    path(f"{ORG}/low-balance", api.CreditLowBalanceApi.as_view(), name="credits-low-balance"),
    path("credit-packs", api.CreditPackListApi.as_view(), name="credit-packs"),
    path("credit-prices", api.CreditPriceListApi.as_view(), name="credit-prices"),
]
