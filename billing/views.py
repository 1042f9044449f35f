"""Server-rendered billing pages for tenants."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .selectors import organization_billing_state, organization_list_for_user


@login_required
def organization_list_page(request):
    organizations = [
        {"organization": org, "state": organization_billing_state(organization=org)}
        for org in organization_list_for_user(user=request.user)
    ]
    return render(request, "billing/organization_list.html", {"organizations": organizations})
