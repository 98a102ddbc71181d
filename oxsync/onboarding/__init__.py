"""Onboarding of devices: Thunderbird autoconfig, Apple configuration profiles, DNS records.

It describes the server as clients must see it (`[server] public_host` / `public_scheme`) and imports
no dialect: the assembly mounts it with `install(service)` after the dialects, wrapping whatever
`/.well-known` resource is there so that `/.well-known/autoconfig/...` reaches us.
"""

from __future__ import annotations

import logging
from typing import Any

from oxsync.onboarding.autoconfig import AutoconfigResource, WellKnownRouter
from oxsync.onboarding.profile import ProfileResource

log = logging.getLogger("oxsync.onboarding")


def install(service: Any) -> None:
    ctx = service.site.context
    root = service.site.root
    autoconfig = AutoconfigResource(ctx.settings, ctx.async_store)
    well_known = root.children.get(b".well-known")
    root.children[b".well-known"] = WellKnownRouter(well_known, autoconfig)
    for segment, resource in (("mail", autoconfig), ("profile", ProfileResource(ctx.settings, ctx.authenticator))):
        try:
            root.register(segment, resource)  # /mail/config-v1.1.xml: the autoconfig.<domain> host form
        except ValueError:
            log.warning("/%s is taken: not mounted", segment, extra={"event": "onboarding.not_mounted"})


__all__ = ["install"]
