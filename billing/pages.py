"""The frame of the tenant pages under `/billing/<org>/`: who may open a page or post a form
(`organization_page`), the organization switcher and navigation, the dashboard's panels and
alerts, and the URLs Stripe's hosted pages return to.

Each app serves its own pages in its `views.py`; the dashboard (`billing.views`) shows parts of
the apps above billing without importing them: they register panels, navigation links and alerts
here from their `AppConfig.ready()`:

    register_nav("credits", order=30, label="Credits", url_name="credits-page")
    register_panel("credits", order=20, render=credits_panel)        # render(page) -> HTML or None
    register_alerts("credits", collect=credits_alerts)               # collect(page) -> [Alert]

Registration is keyed, so registering again (a second `ready()`) replaces rather than duplicates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseNotAllowed
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString

from .access import Access, Action
from .models import Organization
from .selectors import organization_access, organization_list_for_user

READ_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Page:
    """The request on an organization's page, and what the caller may do there."""

    request: HttpRequest
    access: Access

    @property
    def organization(self) -> Organization:
        return self.access.organization

    @property
    def can_pay(self) -> bool:
        return self.access.allows(Action.PAY)

    @property
    def can_manage(self) -> bool:
        return self.access.allows(Action.MANAGE)

    def url(self, name: str, *args, query: dict | None = None) -> str:
        """The absolute URL of one of this organization's pages, on the host the request came to:
        what Stripe's Checkout and Portal return to."""
        url = self.request.build_absolute_uri(reverse(name, args=[self.organization.pk, *args]))
        # Appended after `build_absolute_uri`, which would escape Stripe's `{CHECKOUT_SESSION_ID}`.
        return f"{url}?{urlencode(query, safe='{}')}" if query else url


def organization_page(actions: Action | dict[str, Action] | None = None):
    """A tenant page view `view(request, page, **kwargs)` under `<uuid:org>`.

    Sign-in required; an organization the caller cannot reach answers 404 (as the API does);
    the action of the method (`actions`: one for every method, or per method; reads default to
    `Action.READ`, writes must be named) is checked against `billing.access`: without it, 403 and
    nothing runs. The actions are kept on the view (`page_actions`) for the permission walk in
    the tests."""
    per_method = {"GET": actions, "POST": actions} if isinstance(actions, Action) else dict(actions or {})

    def decorator(view: Callable):
        @functools.wraps(view)
        def wrapper(request, org, *args, **kwargs):
            access = organization_access(org_id=org, user=request.user)
            if access is None:
                raise Http404("Organization not found.")
            method = request.method.upper()
            action = per_method.get(method)
            if action is None:
                if method not in READ_METHODS:
                    return HttpResponseNotAllowed(sorted({"GET", *per_method}))
                action = Action.READ
            if not access.allows(action):
                raise PermissionDenied(access.refusal(action))
            request.access = access
            return view(request, Page(request, access), *args, **kwargs)

        wrapper.page_actions = per_method
        return login_required(wrapper)

    return decorator


# --------------------------------------------------------------------------- navigation
@dataclass(frozen=True)
class NavLink:
    key: str
    order: int
    label: str
    url_name: str


_NAV: dict[str, NavLink] = {}


def register_nav(key: str, *, order: int, label: str, url_name: str) -> None:
    _NAV[key] = NavLink(key, order, label, url_name)


def nav_links() -> list[NavLink]:
    return sorted(_NAV.values(), key=lambda link: (link.order, link.key))


def nav_url(key: str, organization_id) -> str:
    """The URL of the page `key` of an organization (the dashboard for an unknown key)."""
    link = _NAV.get(key)
    try:
        return reverse(link.url_name if link else "billing-organization", args=[organization_id])
    except NoReverseMatch:
        return reverse("billing-organization", args=[organization_id])


# --------------------------------------------------------------------------- dashboard panels and alerts
@dataclass(frozen=True)
class Panel:
    key: str
    order: int
    render: Callable[[Page], str | None]


@dataclass(frozen=True)
class Alert:
    """A notice at the top of the dashboard; `action_url` with `action_label` is a link, and with
    `action_post` a form (POST with CSRF) for actions that change something."""

    key: str
    level: str  # "danger", "warning", "info"
    message: str
    action_label: str = ""
    action_url: str = ""
    action_post: bool = False
    action_fields: dict = field(default_factory=dict)


_PANELS: dict[str, Panel] = {}
_ALERTS: dict[str, tuple[int, Callable[[Page], Iterable[Alert]]]] = {}


def register_panel(key: str, *, order: int, render: Callable[[Page], str | None]) -> None:
    _PANELS[key] = Panel(key, order, render)


def register_alerts(key: str, *, collect: Callable[[Page], Iterable[Alert]], order: int = 50) -> None:
    _ALERTS[key] = (order, collect)


def panels_render(page: Page) -> list[tuple[str, SafeString]]:
    """Each registered panel's HTML for the page, in order (a panel answering None is left out)."""
    out = []
    for panel in sorted(_PANELS.values(), key=lambda p: (p.order, p.key)):
        html = panel.render(page)
        if html:
            out.append((panel.key, SafeString(html)))
    return out


def alerts_collect(page: Page) -> list[Alert]:
    out: list[Alert] = []
    for _, collect in sorted(_ALERTS.values(), key=lambda entry: entry[0]):
        out.extend(collect(page))
    return out


# --------------------------------------------------------------------------- the shell's context
def shell_context(page: Page, *, active: str, title: str) -> dict:
    """What every organization page's layout (`billing/shell.html`) needs: the organization, the
    switcher's choices, the navigation with the current page, and the caller's rights."""
    request = page.request
    organizations = list(organization_list_for_user(user=request.user))
    if page.organization not in organizations:  # staff looking at another tenant's page
        organizations.insert(0, page.organization)
    return {
        "organization": page.organization,
        "page": page,
        "switch_organizations": organizations,
        "nav": [
            {"key": link.key, "label": link.label, "url": nav_url(link.key, page.organization.pk)}
            for link in nav_links()
        ],
        "active": active,
        "page_title": title,
        "can_pay": page.can_pay,
        "can_manage": page.can_manage,
        "role": page.access.role,
        "is_staff_view": page.access.is_staff,
    }
