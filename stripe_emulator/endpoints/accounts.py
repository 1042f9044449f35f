"""Accounts: `GET /v1/account` (the emulator's one platform account) and `/v1/accounts`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import objects
from ..errors import ResourceMissing
from ..params import Params
from ..routing import LIST, api
from .common import Obj

if TYPE_CHECKING:
    from ..app import Context


@api("GET", "/v1/account", allowed=set())
def account_retrieve(ctx: Context, p: Params) -> Obj:
    return ctx.emulator.account


@api("GET", "/v1/accounts", allowed=LIST)
def account_list(ctx: Context, p: Params) -> Obj:
    """Connected accounts: the emulator has none (the platform account is `GET /v1/account`)."""
    return objects.list_object("/v1/accounts")


@api("GET", "/v1/accounts/{account_id}", allowed=set())
def account_retrieve_by_id(ctx: Context, p: Params, account_id: str) -> Obj:
    if account_id != ctx.emulator.account["id"]:
        raise ResourceMissing("account", account_id)
    return ctx.emulator.account


@api("GET", "/v1/accounts/{account_id}/external_accounts", allowed={"object"})
def account_external_accounts(ctx: Context, p: Params, account_id: str) -> Obj:
    return objects.list_object(f"/v1/accounts/{account_id}/external_accounts")
