"""The invoice pages, under `/billing/<org>/invoices/`."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.invoice_list_page, name="invoice-list-page"),
    path("<uuid:invoice_id>/", views.invoice_page, name="invoice-page"),
    path("<uuid:invoice_id>/pdf", views.invoice_pdf_page, name="invoice-page-pdf"),
    path("<uuid:invoice_id>/send", views.invoice_send_action, name="invoice-page-send"),
]
