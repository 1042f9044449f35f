from django.urls import path

from .dashboard import staff_dashboard

urlpatterns = [path("", staff_dashboard, name="staff-dashboard")]
