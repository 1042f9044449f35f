"""Products: `/v1/products`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import catalog, objects
from ..errors import InvalidRequestError
from ..params import Params, merge_metadata, object_param
from ..routing import LIST, api
from ..store import public
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context

PRODUCT_FIELDS = {
    "name",
    "active",
    "description",
    "metadata",
    "images",
    "marketing_features",
    "package_dimensions",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
}


def _product_fields(prod: Obj, p: Params) -> None:
    for key in ("description", "statement_descriptor", "tax_code", "unit_label", "url"):
        if key in p:
            prod[key] = p.str(key)
    if "name" in p:
        prod["name"] = p.str("name", required=True)
    if "active" in p:
        prod["active"] = p.bool("active")
    if "shippable" in p:
        prod["shippable"] = p.bool("shippable")
    if "images" in p:
        prod["images"] = p.list("images")
    if "marketing_features" in p:
        prod["marketing_features"] = [{"name": f.str("name")} for f in p.list_of_dicts("marketing_features")]
    prod["metadata"] = merge_metadata(prod["metadata"], p.metadata())


@api("POST", "/v1/products", allowed=PRODUCT_FIELDS | {"id", "default_price_data", "type"})
def product_create(ctx: Context, p: Params) -> Obj:
    name = p.str("name", required=True)
    product_id = p.str("id") or ctx.store.new_id("product", 19)
    if ctx.store.get("product", product_id) is not None:
        raise InvalidRequestError("Product already exists.", code="resource_already_exists", param="id")
    prod = objects.product(product_id, ctx.now(), name)
    _product_fields(prod, p)
    ctx.store.add("product", prod)
    ctx.emit("product.created", prod)
    if "default_price_data" in p:
        dp = p.dict("default_price_data")
        price = catalog.new_price(ctx, dp, prod)
        prod["default_price"] = price["id"]
    return prod


@api("GET", "/v1/products/{prod_id}", allowed=set())
def product_retrieve(ctx: Context, p: Params, prod_id: str) -> Obj:
    return ctx.store.require("product", prod_id)


@api("POST", "/v1/products/{prod_id}", allowed=PRODUCT_FIELDS | {"default_price"})
def product_update(ctx: Context, p: Params, prod_id: str) -> Obj:
    prod = ctx.store.require("product", prod_id)
    before = public(prod)
    _product_fields(prod, p)
    if "default_price" in p:
        price_id = p.str("default_price")
        if price_id:
            price = object_param(ctx, "price", price_id, "default_price")
            if price["product"] != prod_id:
                raise InvalidRequestError(
                    "The default price must belong to this product.", param="default_price"
                )
        prod["default_price"] = price_id
    prod["updated"] = ctx.now()
    ctx.emit_updated("product.updated", prod, before)
    return prod


@api("DELETE", "/v1/products/{prod_id}", allowed=set())
def product_delete(ctx: Context, p: Params, prod_id: str) -> Obj:
    prod = ctx.store.require("product", prod_id)
    if any(price["product"] == prod_id for price in ctx.store.all("price")):
        raise InvalidRequestError(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    snapshot = ctx.render(prod)
    ctx.store.remove("product", prod_id)
    ctx.emit("product.deleted", snapshot)
    return {"id": prod_id, "object": "product", "deleted": True}


@api("GET", "/v1/products", allowed=LIST | {"active", "ids", "shippable", "url"})
def product_list(ctx: Context, p: Params) -> Obj:
    active, ids = p.bool("active"), p.list("ids")
    return list_of(
        ctx,
        "product",
        p,
        "/v1/products",
        filters={"active": active},
        keep=lambda prod: not ids or prod["id"] in ids,
    )


@api("GET", "/v1/products/{prod_id}/features", allowed=set())
def product_features(ctx: Context, p: Params, prod_id: str) -> Obj:
    """Entitlement features are not emulated: every product has none."""
    ctx.store.require("product", prod_id)
    return objects.list_object(f"/v1/products/{prod_id}/features")
