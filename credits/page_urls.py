"""The credits pages, under `/billing/<org>/credits/`."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.credits_page, name="credits-page"),
    path("buy", views.credits_buy, name="credits-buy"),
    path("buy/checkout", views.credits_buy_checkout, name="credits-buy-checkout"),
    path("auto-refill", views.auto_refill_update, name="credits-auto-refill-update"),
    path("low-balance", views.low_balance_update, name="credits-low-balance-update"),
    path("transactions.csv", views.credits_transactions_csv, name="credits-transactions-csv"),
]
