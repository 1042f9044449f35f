from django.urls import path

from . import analytics_api, api

ORG = "organizations/<uuid:org>"

urlpatterns = [
    path(f"{ORG}/invoices", api.InvoiceListApi.as_view(), name="invoices"),
    path(f"{ORG}/invoices/<uuid:invoice_id>", api.InvoiceDetailApi.as_view(), name="invoice"),
    path(f"{ORG}/invoices/<uuid:invoice_id>/pdf", api.InvoicePdfApi.as_view(), name="invoice-pdf"),
    path(f"{ORG}/billing-summary", api.BillingSummaryApi.as_view(), name="billing-summary"),
    path(f"{ORG}/billing-history", api.BillingHistoryApi.as_view(), name="billing-history"),
    path(f"{ORG}/payment-links", api.PaymentLinkApi.as_view(), name="payment-links"),
    path(f"{ORG}/invoices/<uuid:invoice_id>/send", api.InvoiceSendApi.as_view(), name="invoice-send"),
    path("analytics/revenue", analytics_api.RevenueApi.as_view(), name="analytics-revenue"),
    path("analytics/credits", analytics_api.CreditsApi.as_view(), name="analytics-credits"),
    path("analytics/usage", analytics_api.UsageApi.as_view(), name="analytics-usage"),
    path("analytics/payouts", analytics_api.PayoutsApi.as_view(), name="analytics-payouts"),
    path(
        "analytics/balance-transactions",
        analytics_api.BalanceTransactionsApi.as_view(),
        name="analytics-balance-transactions",
    ),
]
