"""The admin API's OpenAPI 3.1 description, served at /admin/api/openapi.json.

Kept as data next to the handlers; tests/test_console_api.py validates the document itself and every
real response of its run against the schemas named here, so the two cannot drift apart silently.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from oxsync.model import Protocol

NULL_INT = {"type": ["integer", "null"]}
PROTOCOLS = {"enum": [p.value for p in Protocol]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required if required is not None else list(props)}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": {"type": "string"}, "status": {"type": "integer"}}),
    "Flags": _obj({k: {"type": "boolean"} for k in ("tenant_admin", "platform_admin", "public_folders", "sharing")}),
    "Account": _obj({
        "id": {"type": "integer"}, "login": {"type": "string"}, "display_name": {"type": "string"},
        "first_name": {"type": "string"}, "last_name": {"type": "string"}, "email": {"type": "string"},
        "aliases": {"type": "array", "items": {"type": "string"}}, "active": {"type": "boolean"},
        "protocols": {"type": "array", "items": PROTOCOLS},
        "quota_bytes": NULL_INT, "flags": _ref("Flags"), "usage_bytes": {"type": "integer"},
        "groups": {"type": "array", "items": {"type": "integer"}}, "password": {"type": "string"},
    }, ["id", "login", "display_name", "email", "aliases", "active", "protocols", "quota_bytes", "flags"]),
    "AccountPage": _obj({"accounts": {"type": "array", "items": _ref("Account")}, "total": {"type": "integer"},
                         "page": {"type": "integer"}, "per_page": {"type": "integer"}, "pages": {"type": "integer"}}),
    "AccountInput": _obj({
        "login": {"type": "string"}, "password": {"type": "string", "description": "generated (and returned) if absent"},
        "display_name": {"type": "string"}, "email": {"type": "string"},
        "protocols": {"type": "array", "items": PROTOCOLS},
        "flags": {"type": "object", "additionalProperties": {"type": "boolean"}}, "quota_bytes": NULL_INT,
        "aliases": {"type": "array", "items": {"type": "string"}}, "active": {"type": "boolean"},
        "first_name": {"type": "string"}, "last_name": {"type": "string"}}, []),
    "AccountMail": _obj({"send_as": {"type": "array", "items": {"type": "string"},
                                     "description": "addresses this account may also send from"},
                         "collect_addresses": {"type": "boolean",
                                               "description": "automatic collection of contacts (off by default)"},
                         "reminder_mails": {"type": "boolean", "description": "task reminder mails"},
                         "digest_hour": {"type": ["integer", "null"], "minimum": 0, "maximum": 23,
                                         "description": "daily task digest hour (UTC), null = none"}}),
    "AccountMailInput": _obj({"send_as": {"type": "array", "items": {"type": "string"},
                                          "description": "the whole list (replaces it)"},
                              "collect_addresses": {"type": "boolean"}, "reminder_mails": {"type": "boolean"},
                              "digest_hour": {"type": ["integer", "null"], "minimum": 0, "maximum": 23}}, []),
    "Password": _obj({"password": {"type": "string"}}, []),
    "Group": _obj({"id": {"type": "integer"}, "name": {"type": "string"}, "display_name": {"type": "string"},
                   "members": {"type": "array", "items": {"type": "integer"}}}),
    "Groups": _obj({"groups": {"type": "array", "items": _ref("Group")}}),
    "Resource": _obj({"id": {"type": "integer"}, "name": {"type": "string"}, "display_name": {"type": "string"},
                      "email": {"type": "string"}, "kind": {"enum": ["room", "equipment"]},
                      "description": {"type": "string"}}),
    "Resources": _obj({"resources": {"type": "array", "items": _ref("Resource")}}),
    "Bookings": _obj({"bookings": {"type": "array", "items": _obj({
        "id": {"type": "integer"}, "title": {"type": "string"}, "private": {"type": "boolean"},
        "start_ms": NULL_INT, "end_ms": NULL_INT, "organizer": {"type": "string"}, "confirmation": {"type": "integer"}})}}),
    "Permission": _obj({"entity": {"type": "integer"}, "group": {"type": "boolean"},
                        "level": {"type": ["integer", "null"], "minimum": 0, "maximum": 8,
                                  "description": "Outlook level 0-8; null = custom rights"},
                        "rights": {"type": "array", "prefixItems": [{"type": "integer"}] * 4 + [{"type": "boolean"}]}}),
    "Folder": _obj({"id": {"type": "integer"}, "title": {"type": "string"}, "module": {"type": "string"},
                    "default": {"type": "boolean"}, "permissions": {"type": "array", "items": _ref("Permission")}}),
    "Folders": _obj({"folders": {"type": "array", "items": _ref("Folder")}}),
    "Share": _obj({"who": {"type": "string", "pattern": "^(user|group):[0-9]+$"},
                   "level": {"type": ["integer", "null"], "minimum": 0, "maximum": 8}}, ["who", "level"]),
    "Device": _obj({
        "user_id": {"type": "integer"}, "login": {"type": "string"}, "device_id": {"type": "string"},
        "type": {"type": "string"}, "model": {"type": "string"}, "user_agent": {"type": "string"},
        "version": {"type": "string"}, "first_seen": NULL_INT, "last_seen": NULL_INT, "last_sync": NULL_INT,
        "policy": {"type": "string"}, "wipe": {"type": "string"}, "wipe_kind": {"type": "string"}},
        ["user_id", "device_id", "type", "model", "user_agent", "version", "policy", "wipe"]),
    "Devices": _obj({"devices": {"type": "array", "items": _ref("Device")}}),
    "DeviceDetail": {"allOf": [_ref("Device"), _obj({"folders": {"type": "array", "items": _obj({
        "collection": {"type": "string"}, "title": {"type": ["string", "integer"]}, "sync_key": {"type": "string"},
        "filter": {"type": ["integer", "string"]}, "known": {"type": "integer"}, "pending": {"type": "integer"},
        "skipped": {"type": "object"}, "updated_ms": {"type": "integer"}})}})]},
    "DeviceAction": _obj({"action": {"type": "string"}, "records": {"type": "integer"}}),
    "TenantSummary": _obj({
        "tenant_id": {"type": "integer"}, "domain": {"type": "string"}, "max_accounts": NULL_INT,
        "accounts_created": {"type": "integer"}, "accounts_active": {"type": "integer"},
        "accounts_available": NULL_INT, "quota_bytes": NULL_INT, "used_bytes": {"type": "integer"},
        "public_bytes": {"type": "integer"}, "private_bytes": {"type": "integer"}, "available_bytes": NULL_INT,
        "devices": {"type": "integer"}, "devices_active_day": {"type": "integer"},
        "mail_failures": {"type": "integer"}}),
    "Tenants": _obj({"tenants": {"type": "array", "items": _obj({
        "id": {"type": "integer"}, "domain": {"type": "string"}, "max_accounts": NULL_INT, "quota_bytes": NULL_INT,
        "used_bytes": {"type": "integer"}, "accounts": {"type": "integer"}})}}),
    "TenantInput": _obj({"domain": {"type": "string"}, "max_accounts": NULL_INT, "quota_bytes": NULL_INT}, []),
    "Audit": _obj({"entries": {"type": "array", "items": _obj({
        "id": {"type": "integer"}, "ms": {"type": "integer"}, "tenant_id": NULL_INT, "actor": {"type": "string"},
        "via": {"type": "string"}, "address": {"type": "string"}, "action": {"type": "string"},
        "target": {"type": "string"}, "detail": {"type": "string"}})}}),
    "Deleted": _obj({"deleted": {"type": "integer"}}),
    "Empty": {"type": "object"},
}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or {"type": "integer"}}


def _op(summary: str, ok: str, status: str = "200", body: str | None = None, params: list[Any] | None = None,
        tag: str = "tenant") -> dict[str, Any]:
    errors = {code: {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
              for code, text in (("400", "invalid input"), ("401", "missing or invalid token"),
                                 ("403", "not allowed"), ("404", "not found (or another tenant's)"),
                                 ("409", "conflict"))}
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {
        status: {"description": "ok", "content": {"application/json": {"schema": _ref(ok)}}}, **errors}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    return op


TID, UID, GID, RID, FID = (_param(n) for n in ("tid", "uid", "gid", "rid", "fid"))
DEV = _param("dev", schema={"type": "string"})
ACTION = _param("action", schema={"enum": ["wipe", "wipe_account", "cancel_wipe", "remove", "resync"]})
T = "/tenants/{tid}"

PATHS: dict[str, Any] = {
    "/tenants": {"get": _op("list tenants (platform)", "Tenants", tag="platform"),
                 "post": _op("create a tenant (platform)", "TenantSummary", "201", "TenantInput", tag="platform")},
    T: {"get": _op("tenant home: accounts, storage, devices", "TenantSummary", params=[TID]),
        "patch": _op("set account limit and quota (platform)", "TenantSummary", body="TenantInput", params=[TID],
                     tag="platform")},
    T + "/accounts": {
        "get": _op("search, sort and page accounts", "AccountPage", params=[
            TID, _param("q", "query", {"type": "string"}), _param("sort", "query", {"enum": [
                "login", "display_name", "email", "active", "usage_bytes"]}),
            _param("dir", "query", {"enum": ["asc", "desc"]}), _param("page", "query"), _param("per_page", "query")]),
        "post": _op("create an account", "Account", "201", "AccountInput", [TID])},
    T + "/accounts/{uid}": {
        "get": _op("one account", "Account", params=[TID, UID]),
        "patch": _op("change, suspend (active=false) or resume an account", "Account", body="AccountInput",
                     params=[TID, UID]),
        "delete": _op("delete an account and all its data", "Deleted", params=[
            TID, UID, {**_param("confirm", "query", {"type": "string"}), "required": True,
                       "description": "the account's login, as typed confirmation"}])},
    T + "/accounts/{uid}/mail": {
        "get": _op("send-as addresses, contact collection, task reminder mails and digest hour", "AccountMail", params=[TID, UID]),
        "patch": _op("set send-as addresses, contact collection, task reminder mails and digest hour", "AccountMail",
                     body="AccountMailInput", params=[TID, UID])},
    T + "/accounts/{uid}/password": {"post": _op("set or generate a password", "Password", body="Password",
                                                 params=[TID, UID])},
    T + "/groups": {"get": _op("groups", "Groups", params=[TID]),
                    "post": _op("create a group", "Group", "201", "Group", [TID])},
    T + "/groups/{gid}": {"patch": _op("rename a group", "Group", body="Group", params=[TID, GID]),
                          "delete": _op("delete a group", "Deleted", params=[TID, GID])},
    T + "/groups/{gid}/members/{uid}": {"put": _op("member ON", "Group", params=[TID, GID, UID]),
                                        "delete": _op("member OFF", "Group", params=[TID, GID, UID])},
    T + "/resources": {"get": _op("rooms and equipment", "Resources", params=[TID]),
                       "post": _op("create a resource", "Resource", "201", "Resource", [TID])},
    T + "/resources/{rid}": {"delete": _op("delete a resource", "Deleted", params=[TID, RID])},
    T + "/resources/{rid}/bookings": {"get": _op("a resource's bookings", "Bookings", params=[TID, RID])},
    T + "/accounts/{uid}/folders": {"get": _op("an account's folders and permissions", "Folders",
                                               params=[TID, UID])},
    T + "/accounts/{uid}/folders/{fid}/permissions": {
        "put": _op("share a folder at an Outlook level (null removes)", "Folder", body="Share",
                   params=[TID, UID, FID])},
    T + "/devices": {"get": _op("every ActiveSync device of the tenant", "Devices", params=[TID])},
    T + "/accounts/{uid}/devices/{dev}": {"get": _op("one device with its per-folder state", "DeviceDetail",
                                                     params=[TID, UID, DEV])},
    T + "/accounts/{uid}/devices/{dev}/{action}": {
        "post": _op("wipe, account-only wipe, cancel wipe, remove, resync (target: folder id or class)",
                    "DeviceAction", params=[TID, UID, DEV, ACTION])},
    T + "/audit": {"get": _op("audit log, newest first", "Audit", params=[
        TID, _param("limit", "query"), _param("before", "query")])},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "oxsync admin API", "version": "1",
                 "description": "The web console's operations as JSON. Bearer tokens from `oxsync token add`."},
        "servers": [{"url": "/admin/api"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@cache
def document_bytes() -> bytes:
    return json.dumps(document(), indent=1).encode("utf-8")
