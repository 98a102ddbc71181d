"""`/admin/api/`: the console's operations as JSON, for hosting automation (OpenAPI: /admin/api/openapi.json).

Same store calls as the pages (oxsync.store.admin_ops), so both always agree. Authentication is a
bearer token (`oxsync token add`, or the console's token page): scoped to one tenant or the platform,
checked in the store like a console admin. Invalid tokens count as failed logins per client address.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.console.pages_base import parse_size
from oxsync.console.web import SECURITY_HEADERS, Ctx, Json, Route, Router, error_status, json_body
from oxsync.logs import failure_exc_info
from oxsync.model import Protocol
from oxsync.store import admin, admin_mail, admin_ops
from oxsync.store.errors import AuthenticationFailed, InvalidData, NotFound, StoreError
from oxsync.web import client_address, is_gone, send_bytes

log = logging.getLogger("oxsync.console.api")


# ---------------------------------------------------------------- JSON shapes


def account_json(u: Any, usage: int | None = None) -> dict[str, Any]:
    out = {"id": u.id, "login": u.login, "display_name": u.display_name, "first_name": u.first_name,
           "last_name": u.last_name, "email": u.email, "aliases": list(u.aliases), "active": u.active,
           "protocols": sorted(p.value for p in u.protocols), "quota_bytes": u.quota_bytes,
           "flags": {"tenant_admin": u.tenant_admin, "platform_admin": u.platform_admin,
                     "public_folders": u.public_folders, "sharing": u.sharing}}
    if usage is not None:
        out["usage_bytes"] = usage
    return out


def group_json(g: Any) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "display_name": g.display_name, "members": list(g.members)}


def resource_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "display_name": r.display_name, "email": r.email, "kind": r.kind.value,
            "description": r.description}


def _protocols(value: Any) -> list[Protocol] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidData("protocols must be a list of names", field="protocols")
    try:
        return [Protocol(v) for v in value]
    except ValueError:
        raise InvalidData(f"protocols are {', '.join(p.value for p in Protocol)}", field="protocols") from None


def _flags(value: Any) -> dict[str, bool]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
        raise InvalidData("flags must map names to true/false", field="flags")
    return value


def _quota(body: dict[str, Any]) -> Any:
    if "quota_bytes" not in body:
        return ...
    value = body["quota_bytes"]
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    if isinstance(value, str):
        return parse_size(value)
    raise InvalidData("quota_bytes is a number of bytes or null", field="quota_bytes")


def _str(body: dict[str, Any], name: str, default: str = "") -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidData(f"{name} must be a string", field=name)
    return value


def _int_query(ctx: Ctx, name: str, default: int) -> int:
    try:
        return int(ctx.query.get(name, default))
    except ValueError:
        raise InvalidData(f"{name} must be a number", field=name) from None


# ---------------------------------------------------------------- routes


def register(r: Router) -> None:  # noqa: C901 - one flat table of small handlers reads best
    T = "/tenants/{tid}"

    @r.add("GET", "/tenants", "platform")
    def tenants(ctx: Ctx) -> Json:
        return Json({"tenants": admin_ops.list_tenants(ctx.store, ctx.resolved_actor)})

    @r.add("POST", "/tenants", "platform")
    def tenant_create(ctx: Ctx) -> Json:
        body = json_body(ctx)
        tid = admin_ops.create_tenant(ctx.store, ctx.resolved_actor, _str(body, "domain"), body.get("max_accounts"),
                                      body.get("quota_bytes"))
        return Json(admin_ops.tenant_summary(ctx.store, ctx.resolved_actor, tid), 201)

    @r.add("PATCH", T, "platform")
    def tenant_limits(ctx: Ctx) -> Json:
        body = json_body(ctx)
        limits = {k: body[k] for k in ("max_accounts", "quota_bytes") if k in body}
        admin_ops.set_tenant_limits(ctx.store, ctx.resolved_actor, ctx.tenant_id, **limits)
        return Json(admin_ops.tenant_summary(ctx.store, ctx.resolved_actor, ctx.tenant_id))

    @r.add("GET", T)
    def tenant(ctx: Ctx) -> Json:
        return Json(admin_ops.tenant_summary(ctx.store, ctx.resolved_actor, ctx.tenant_id))

    @r.add("GET", T + "/accounts")
    def accounts(ctx: Ctx) -> Json:
        page = admin_ops.list_accounts(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.query.get("q", ""),
                                       ctx.query.get("sort", "login"), ctx.query.get("dir") == "desc",
                                       _int_query(ctx, "page", 1),
                                       min(_int_query(ctx, "per_page", 50), ctx.settings.console.max_page_size))
        return Json({"accounts": [account_json(u, page["usage"].get(u.id, 0)) for u in page["users"]],
                     "total": page["total"], "page": page["page"], "per_page": page["per_page"],
                     "pages": page["pages"]})

    @r.add("POST", T + "/accounts")
    def account_create(ctx: Ctx) -> Json:
        body = json_body(ctx)
        aliases = body.get("aliases") or []
        if not isinstance(aliases, list):
            raise InvalidData("aliases must be a list", field="aliases")
        quota = _quota(body)
        user, generated = admin_ops.create_account(
            ctx.store, ctx.resolved_actor, ctx.tenant_id, _str(body, "login"), password=_str(body, "password") or None,
            display_name=_str(body, "display_name"), email=_str(body, "email") or None,
            protocols=_protocols(body.get("protocols", [p.value for p in Protocol])) or [],
            flags=_flags(body.get("flags")), quota_bytes=None if quota is ... else quota, aliases=aliases)
        out = account_json(user, 0)
        if generated:
            out["password"] = generated
        return Json(out, 201)

    @r.add("GET", T + "/accounts/{uid}")
    def account(ctx: Ctx) -> Json:
        user, groups, usage = admin_ops.get_account(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("uid"))
        return Json({**account_json(user, usage), "groups": groups})

    @r.add("PATCH", T + "/accounts/{uid}")
    def account_update(ctx: Ctx) -> Json:
        body = json_body(ctx)
        active = body.get("active")
        if active is not None and not isinstance(active, bool):
            raise InvalidData("active must be true or false", field="active")
        uid = ctx.int_param("uid")
        user = admin_ops.update_account(
            ctx.store, ctx.resolved_actor, ctx.tenant_id, uid, display_name=body.get("display_name"),
            first_name=body.get("first_name"), last_name=body.get("last_name"),
            protocols=_protocols(body.get("protocols")), flags=_flags(body.get("flags")), quota_bytes=_quota(body),
            active=active)
        if "aliases" in body:
            wanted = body["aliases"]
            if not isinstance(wanted, list):
                raise InvalidData("aliases must be a list", field="aliases")
            wanted = [str(a).lower() for a in wanted]
            user = admin_ops.set_aliases(ctx.store, ctx.resolved_actor, ctx.tenant_id, uid,
                                         add=[a for a in wanted if a not in user.aliases],
                                         remove=[a for a in user.aliases if a not in wanted])
        return Json(account_json(user))

    @r.add("GET", T + "/accounts/{uid}/mail")
    def account_mail(ctx: Ctx) -> Json:
        return Json(admin_mail.account_mail(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("uid")))

    @r.add("PATCH", T + "/accounts/{uid}/mail")
    def account_mail_update(ctx: Ctx) -> Json:
        """send_as replaces the list (like aliases); collect_addresses flips the switch."""
        body = json_body(ctx)
        uid = ctx.int_param("uid")
        current = admin_mail.account_mail(ctx.store, ctx.resolved_actor, ctx.tenant_id, uid)
        add: list[str] = []
        remove: list[str] = []
        if "send_as" in body:
            wanted = body["send_as"]
            if not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted):
                raise InvalidData("send_as must be a list of addresses", field="send_as")
            wanted = [a.strip().lower() for a in wanted]
            add = [a for a in wanted if a not in current["send_as"]]
            remove = [a for a in current["send_as"] if a not in wanted]
        return Json(admin_mail.set_account_mail(ctx.store, ctx.resolved_actor, ctx.tenant_id, uid, add_send_as=add,
                                                remove_send_as=remove,
                                                collect_addresses=body.get("collect_addresses"),
                                                options={k: body[k] for k in ("reminder_mails", "digest_hour")
                                                         if k in body}))

    @r.add("POST", T + "/accounts/{uid}/password")
    def account_password(ctx: Ctx) -> Json:
        body = json_body(ctx)
        given = _str(body, "password") or None
        password = admin_ops.reset_password(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("uid"), given)
        return Json({} if given else {"password": password})

    @r.add("DELETE", T + "/accounts/{uid}")
    def account_delete(ctx: Ctx) -> Json:
        uid = ctx.int_param("uid")
        admin_ops.delete_account(ctx.store, ctx.resolved_actor, ctx.tenant_id, uid, ctx.query.get("confirm", ""))
        return Json({"deleted": uid})

    @r.add("GET", T + "/groups")
    def groups(ctx: Ctx) -> Json:
        return Json({"groups": [group_json(g) for g in admin_ops.list_groups(ctx.store, ctx.resolved_actor, ctx.tenant_id)]})

    @r.add("POST", T + "/groups")
    def group_create(ctx: Ctx) -> Json:
        body = json_body(ctx)
        members = body.get("members") or []
        if not isinstance(members, list) or not all(isinstance(m, int) for m in members):
            raise InvalidData("members must be a list of account ids", field="members")
        group = admin_ops.create_group(ctx.store, ctx.resolved_actor, ctx.tenant_id, _str(body, "name"),
                                       _str(body, "display_name"), members)
        return Json(group_json(group), 201)

    @r.add("PATCH", T + "/groups/{gid}")
    def group_rename(ctx: Ctx) -> Json:
        body = json_body(ctx)
        group = admin_ops.rename_group(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("gid"),
                                       _str(body, "display_name"))
        return Json(group_json(group))

    @r.add("PUT", T + "/groups/{gid}/members/{uid}")
    def member_on(ctx: Ctx) -> Json:
        return Json(group_json(admin_ops.set_group_member(ctx.store, ctx.resolved_actor, ctx.tenant_id,
                                                          ctx.int_param("gid"), ctx.int_param("uid"), True)))

    @r.add("DELETE", T + "/groups/{gid}/members/{uid}")
    def member_off(ctx: Ctx) -> Json:
        return Json(group_json(admin_ops.set_group_member(ctx.store, ctx.resolved_actor, ctx.tenant_id,
                                                          ctx.int_param("gid"), ctx.int_param("uid"), False)))

    @r.add("DELETE", T + "/groups/{gid}")
    def group_delete(ctx: Ctx) -> Json:
        admin_ops.delete_group(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("gid"))
        return Json({"deleted": ctx.int_param("gid")})

    @r.add("GET", T + "/resources")
    def resources(ctx: Ctx) -> Json:
        items = admin_ops.list_resources(ctx.store, ctx.resolved_actor, ctx.tenant_id)
        return Json({"resources": [resource_json(x) for x in items]})

    @r.add("POST", T + "/resources")
    def resource_create(ctx: Ctx) -> Json:
        body = json_body(ctx)
        res = admin_ops.create_resource(ctx.store, ctx.resolved_actor, ctx.tenant_id, _str(body, "name"), _str(body, "email"),
                                        _str(body, "display_name"), _str(body, "kind", "room"),
                                        _str(body, "description"))
        return Json(resource_json(res), 201)

    @r.add("DELETE", T + "/resources/{rid}")
    def resource_delete(ctx: Ctx) -> Json:
        admin_ops.delete_resource(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("rid"))
        return Json({"deleted": ctx.int_param("rid")})

    @r.add("GET", T + "/resources/{rid}/bookings")
    def bookings(ctx: Ctx) -> Json:
        return Json({"bookings": admin_ops.resource_bookings(ctx.store, ctx.resolved_actor, ctx.tenant_id,
                                                             ctx.int_param("rid"))})

    @r.add("GET", T + "/accounts/{uid}/folders")
    def folders(ctx: Ctx) -> Json:
        return Json({"folders": admin_ops.user_folders(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("uid"))})

    @r.add("PUT", T + "/accounts/{uid}/folders/{fid}/permissions")
    def share(ctx: Ctx) -> Json:
        body = json_body(ctx)
        who, level = _str(body, "who"), body.get("level")
        kind, _, number = who.partition(":")
        if kind not in ("user", "group") or not number.isdigit():
            raise InvalidData("who is 'user:<id>' or 'group:<id>'", field="who")
        if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
            raise InvalidData("level is 0-8 or null", field="level")
        uid, fid = ctx.int_param("uid"), ctx.int_param("fid")
        admin_ops.share_folder(ctx.store, ctx.resolved_actor, ctx.tenant_id, uid, fid, int(number), kind == "group", level)
        found = [f for f in admin_ops.user_folders(ctx.store, ctx.resolved_actor, ctx.tenant_id, uid) if f["id"] == fid]
        return Json(found[0] if found else {})

    @r.add("GET", T + "/devices")
    def devices(ctx: Ctx) -> Json:
        return Json({"devices": admin_ops.list_devices(ctx.store, ctx.resolved_actor, ctx.tenant_id)})

    @r.add("GET", T + "/accounts/{uid}/devices/{dev}")
    def device(ctx: Ctx) -> Json:
        return Json(admin_ops.device_detail(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("uid"),
                                            ctx.params["dev"]))

    @r.add("POST", T + "/accounts/{uid}/devices/{dev}/{action}")
    def device_action(ctx: Ctx) -> Json:
        body = json_body(ctx)
        action = ctx.params["action"]
        if action not in ("wipe", "wipe_account", "cancel_wipe", "remove", "resync"):
            raise NotFound(f"no device action {action}")
        touched = admin_ops.device_action(ctx.store, ctx.resolved_actor, ctx.tenant_id, ctx.int_param("uid"),
                                          ctx.params["dev"], action, _str(body, "target"))
        return Json({"action": action, "records": touched})

    @r.add("GET", T + "/audit")
    def audit(ctx: Ctx) -> Json:
        before = ctx.query.get("before")
        rows = admin.read_audit(ctx.store, ctx.resolved_actor, ctx.tenant_id, limit=_int_query(ctx, "limit", 100),
                                before_id=int(before) if before and before.isdigit() else None)
        return Json({"entries": rows})


# ---------------------------------------------------------------- the resource


def run_api(console: Any, route: Route, ctx: Ctx) -> tuple[int, dict[bytes, bytes], bytes, bytes, list[Any]]:
    """On the pool: token -> actor, gate, handle; errors as JSON with their status."""
    try:
        ctx.actor = admin.token_actor(ctx.store, ctx.services.bearer(ctx), ctx.address)
        if route.need == "platform":
            admin.check_platform(ctx.actor)
        response = route.handler(ctx)
    except StoreError as exc:
        status = error_status(exc)
        if isinstance(exc, AuthenticationFailed):
            ctx.login_outcome = True
        response = Json({"error": str(exc), "status": status}, status)
    assert isinstance(response, Json)
    body = json.dumps(response.value, separators=(",", ":")).encode("utf-8")
    headers = {b"WWW-Authenticate": b'Bearer realm="oxsync"'} if response.status == 401 else {}
    return response.status, headers, b"application/json", body, []


class ApiResource(Resource):
    isLeaf = True

    def __init__(self, console: Any) -> None:
        super().__init__()
        self.console = console

    def render(self, request: Request) -> Any:
        from oxsync.console import openapi
        from oxsync.console.web import Ctx as Context

        method = (request.method or b"GET").decode("ascii", "replace")
        path = "/" + "/".join(p.decode("utf-8", "replace") for p in request.postpath or []).strip("/")
        path = path.rstrip("/") or "/"
        if path == "/openapi.json" and method in ("GET", "HEAD"):
            send_bytes(request, 200, openapi.document_bytes(), b"application/json", SECURITY_HEADERS)
            return NOT_DONE_YET
        route, params, other = self.console.api_router.find(method, path)
        if route is None:
            status = 405 if other else 404
            body = json.dumps({"error": "method not allowed" if other else "not found", "status": status}).encode()
            send_bytes(request, status, body, b"application/json", SECURITY_HEADERS)
            return NOT_DONE_YET
        address = client_address(request)
        wait = self.console.throttle.retry_after(None, address)
        if wait > 0:
            body = json.dumps({"error": f"too many failed logins; retry in {wait} s", "status": 429}).encode()
            send_bytes(request, 429, body, b"application/json", {**SECURITY_HEADERS, b"Retry-After": b"%d" % wait})
            return NOT_DONE_YET
        query = {k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace") for k, v in (request.args or {}).items()}
        body = b""
        content = request.content
        if content is not None:
            content.seek(0)
            body = content.read(self.console.settings.console.max_form_bytes + 1)
        ctx = Context(self.console.store, self.console.settings, method, path, params, query, {}, body, address,
                      "en", False, None, services=self.console)
        ctx.authorization = (request.getHeader(b"authorization") or b"").decode("latin-1")
        d = self.console.async_store.run(run_api, self.console, route, ctx)

        def respond(result: tuple[int, dict[bytes, bytes], bytes, bytes, list[Any]]) -> None:
            if ctx.login_outcome:
                self.console.throttle.record_failure(None, address)
                log.warning("admin API token refused", extra={"event": "auth.failed", "address": address,
                                                               "protocol": "admin-api"})
            status, headers, ctype, payload, _ = result
            if not is_gone(request):
                send_bytes(request, status, payload, ctype, {**SECURITY_HEADERS, **headers})

        def failed(failure: Any) -> None:
            log.error("admin API request failed", exc_info=failure_exc_info(failure),
                      extra={"event": "console.api_error"})
            if not is_gone(request):
                send_bytes(request, 500, b'{"error":"internal error","status":500}', b"application/json")

        d.addCallbacks(respond, failed)
        return NOT_DONE_YET
