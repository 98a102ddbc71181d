"""Groups ("groupes collaboratifs": create, rename, members ON/OFF, delete) and resources with bookings."""

from __future__ import annotations

from oxsync.console.web import Ctx, Page, Redirect, Response, Router
from oxsync.store import admin_ops


def register(r: Router) -> None:
    @r.add("GET", "/t/{tid}/groups")
    def groups(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        return Page("groups.html", {"groups": admin_ops.list_groups(ctx.store, ctx.actor, ctx.tenant_id),
                                    "tid": ctx.tenant_id})

    @r.add("POST", "/t/{tid}/groups")
    def group_create(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        group = admin_ops.create_group(ctx.store, ctx.actor, ctx.tenant_id, ctx.field("name"), ctx.field("display_name"))
        return Redirect(f"/t/{ctx.tenant_id}/groups/{group.id}")

    @r.add("GET", "/t/{tid}/groups/{gid}")
    def group_show(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        gid = ctx.int_param("gid")
        group = next((g for g in admin_ops.list_groups(ctx.store, ctx.actor, ctx.tenant_id) if g.id == gid), None)
        if group is None:
            from oxsync.store.errors import NotFound

            raise NotFound(f"group {gid} does not exist")
        users = admin_ops.list_accounts(ctx.store, ctx.actor, ctx.tenant_id, per_page=500)["users"]
        return Page("group.html", {"group": group, "users": users, "tid": ctx.tenant_id})

    @r.add("POST", "/t/{tid}/groups/{gid}/rename")
    def group_rename(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        admin_ops.rename_group(ctx.store, ctx.actor, ctx.tenant_id, ctx.int_param("gid"), ctx.field("display_name"))
        return Redirect(f"/t/{ctx.tenant_id}/groups/{ctx.int_param('gid')}")

    @r.add("POST", "/t/{tid}/groups/{gid}/members/{uid}")
    def group_member(ctx: Ctx) -> Response:
        """One ON/OFF toggle; htmx swaps the row in place, without JavaScript the page reloads."""
        assert ctx.actor is not None
        gid, uid = ctx.int_param("gid"), ctx.int_param("uid")
        group = admin_ops.set_group_member(ctx.store, ctx.actor, ctx.tenant_id, gid, uid, ctx.field("member") == "on")
        if ctx.htmx:
            user = admin_ops.get_account(ctx.store, ctx.actor, ctx.tenant_id, uid)[0]
            return Page("member_row.html", {"group": group, "u": user, "tid": ctx.tenant_id})
        return Redirect(f"/t/{ctx.tenant_id}/groups/{gid}")

    @r.add("POST", "/t/{tid}/groups/{gid}/delete")
    def group_delete(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        admin_ops.delete_group(ctx.store, ctx.actor, ctx.tenant_id, ctx.int_param("gid"))
        return Redirect(f"/t/{ctx.tenant_id}/groups")

    @r.add("GET", "/t/{tid}/resources")
    def resources(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        return Page("resources.html", {"resources": admin_ops.list_resources(ctx.store, ctx.actor, ctx.tenant_id),
                                       "tid": ctx.tenant_id})

    @r.add("POST", "/t/{tid}/resources")
    def resource_create(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        res = admin_ops.create_resource(ctx.store, ctx.actor, ctx.tenant_id, ctx.field("name"), ctx.field("email"),
                                        ctx.field("display_name"), ctx.field("kind", "room"), ctx.field("description"))
        return Redirect(f"/t/{ctx.tenant_id}/resources/{res.id}")

    @r.add("GET", "/t/{tid}/resources/{rid}")
    def resource_show(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        rid = ctx.int_param("rid")
        bookings = admin_ops.resource_bookings(ctx.store, ctx.actor, ctx.tenant_id, rid)
        res = next(x for x in admin_ops.list_resources(ctx.store, ctx.actor, ctx.tenant_id) if x.id == rid)
        return Page("resource.html", {"res": res, "bookings": bookings, "tid": ctx.tenant_id})

    @r.add("POST", "/t/{tid}/resources/{rid}/delete")
    def resource_delete(ctx: Ctx) -> Response:
        assert ctx.actor is not None
        admin_ops.delete_resource(ctx.store, ctx.actor, ctx.tenant_id, ctx.int_param("rid"))
        return Redirect(f"/t/{ctx.tenant_id}/resources")
