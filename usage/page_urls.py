"""The usage page, under `/billing/<org>/usage/`."""

from django.urls import path

from . import views

urlpatterns = [path("", views.usage_page, name="usage-page")]
