"""Errors of the invoices app, each with a stable code."""

from rest_framework import status

from config.exceptions import ApplicationError


class InvoiceNotFound(ApplicationError):
    code = "not_found"
    status = status.HTTP_404_NOT_FOUND
    default_message = "Invoice not found."


class InvoiceAlreadySent(ApplicationError):
    code = "invoice_already_sent"
    status = status.HTTP_409_CONFLICT
    default_message = "This invoice was already sent to that address; send again with resend: true."


class InvoiceNotSendable(ApplicationError):
    code = "invoice_not_sendable"
    status = status.HTTP_409_CONFLICT
    default_message = "A draft invoice cannot be sent."


class InvoiceActionRefused(ApplicationError):
    code = "invoice_action_refused"
    status = status.HTTP_409_CONFLICT
    default_message = "This action is not possible for this invoice."


class PdfRenderingFailed(ApplicationError):
    code = "pdf_rendering_failed"
    status = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_message = "The PDF could not be rendered."
