"""Devices, tenant-wide and per account: what support staff need (Z-Push's admin tool as pages).

The device id comes from one path segment, already percent-decoded by twisted.web (not decoded twice)."""

from __future__ import annotations

from oxsync.console.web import Ctx, Page, Redirect, Response, Router
from oxsync.store import admin_ops
from oxsync.store.errors import InvalidData

ACTIONS = ("wipe", "wipe_account", "cancel_wipe", "remove", "resync")


def register(r: Router) -> None:
    @r.add("GET", "/t/{tid}/devices")
    def devices(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        return Page("devices.html", {"devices": admin_ops.list_devices(ctx.store, ctx.actor, ctx.tenant_id),
                                     "tid": ctx.tenant_id})

    @r.add("GET", "/t/{tid}/accounts/{uid}/devices/{dev}")
    def device(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        uid, dev = ctx.int_param("uid"), ctx.params["dev"]
        detail = admin_ops.device_detail(ctx.store, ctx.actor, ctx.tenant_id, uid, dev)
        return Page("device.html", {"d": detail, "uid": uid, "tid": ctx.tenant_id,
                                    "classes": list(admin_ops.CLASS_MODULES)})

    @r.add("POST", "/t/{tid}/accounts/{uid}/devices/{dev}/{action}")
    def device_action(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        uid, dev, action = ctx.int_param("uid"), ctx.params["dev"], ctx.params["action"]
        if action not in ACTIONS:
            raise InvalidData(f"unknown action {action}", field="action")
        admin_ops.device_action(ctx.store, ctx.actor, ctx.tenant_id, uid, dev, action, ctx.field("target"))
        if action == "remove":
            return Redirect(f"/t/{ctx.tenant_id}/accounts/{uid}")
        from urllib.parse import quote

        return Redirect(f"/t/{ctx.tenant_id}/accounts/{uid}/devices/{quote(dev, safe='')}")
