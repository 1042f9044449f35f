"""Who may do what in an organization: the one table, enforced by `billing.tenancy.OrganizationApi`
for every API view (and asked by the pages to decide what they offer).

| action      | what                                      | tenant (role / key) | platform key scope | staff |
|-------------|-------------------------------------------|---------------------|--------------------|-------|
| read        | any read                                  | member and up       | organizations:read | yes   |
| consume     | consume credits                           | admin and up        | credits:consume    | yes   |
| usage_write | record usage, reservations                | admin and up        | usage:write        | yes   |
| pay         | subscribe, change plan, buy, cards,       | billing and up      | never              | yes   |
|             | refill, statements, sending an invoice    |                     |                    |       |
| manage      | API keys, meter sync, payment links       | admin and up        | never              | yes   |
| grant       | grant, adjust, set a balance, reverse     | never               | credits:grant      | yes   |

A tenant gains value only by paying: no tenant role, and no organization API key, may grant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from .models import ROLE_RANK, Organization, PlatformScope, Role


class Action(StrEnum):
    READ = "read"
    CONSUME = "consume"
    USAGE_WRITE = "usage_write"
    PAY = "pay"
    MANAGE = "manage"
    GRANT = "grant"


@dataclass(frozen=True)
class Rule:
    tenant_role: str | None  # the lowest tenant role allowed; None: no tenant
    scope: str | None  # the platform key scope that allows it; None: no platform key
    refusal: str


RULES: dict[Action, Rule] = {
    Action.READ: Rule(
        Role.MEMBER, PlatformScope.ORGANIZATIONS_READ, "This needs membership of the organization."
    ),
    Action.CONSUME: Rule(
        Role.ADMIN, PlatformScope.CREDITS_CONSUME, "Consuming credits needs the admin role or higher."
    ),
    Action.USAGE_WRITE: Rule(
        Role.ADMIN, PlatformScope.USAGE_WRITE, "Recording usage needs the admin role or higher."
    ),
    Action.PAY: Rule(Role.BILLING, None, "This needs the billing role or higher in this organization."),
    Action.MANAGE: Rule(Role.ADMIN, None, "This needs the admin role or higher in this organization."),
    Action.GRANT: Rule(
        None,
        PlatformScope.CREDITS_GRANT,
        "Only staff and platform keys with the credits:grant scope may add credits or reverse consumption.",
    ),
}


@dataclass(frozen=True)
class Access:
    """Who is acting on an organization: a member or an organization API key (with a role),
    a platform key (with scopes), or staff."""

    organization: Organization
    role: str | None
    user_id: int | None = None
    api_key_id: uuid.UUID | None = None
    platform_key_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_staff: bool = False

    def has_role(self, minimum: str) -> bool:
        """A tenant role at least `minimum` (staff count as owners; platform keys have none)."""
        if self.is_staff:
            return True
        return self.role is not None and ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]

    def allows(self, action: Action) -> bool:
        if self.is_staff:
            return True
        rule = RULES[action]
        if self.platform_key_id is not None:
            return rule.scope is not None and rule.scope in self.scopes
        return rule.tenant_role is not None and self.has_role(rule.tenant_role)

    def refusal(self, action: Action) -> str:
        rule = RULES[action]
        if self.platform_key_id is not None and rule.scope is not None:
            return f"This platform key lacks the {rule.scope} scope."
        if self.platform_key_id is not None:
            return "Platform keys cannot do this; a member of the organization must."
        return rule.refusal

    @property
    def actor(self) -> str:
        """The plain label the ledger stores for this caller."""
        if self.platform_key_id:
            return f"platform_key:{self.platform_key_id}"
        if self.api_key_id:
            return f"api_key:{self.api_key_id}"
        if self.user_id is not None:
            return f"{'staff' if self.is_staff else 'user'}:{self.user_id}"
        return ""
