"""Provision (MS-ASPROV): policy download + acknowledgement, DeviceInformation, remote wipe.

Round trip 1 hands out a random temporary key with a permissive policy document; round trip 2
exchanges an acknowledged temporary key for the final key the gate checks. A wipe requested by the
admin (`oxsync device wipe`, the console) is delivered as an empty `RemoteWipe` and confirmed by the device;
an account-only wipe requested for a 16.1 device is sent as `AccountOnlyRemoteWipe` (older versions
have no such element: they get the full `RemoteWipe`, as the console says).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from oxsync.eas import protocol, state
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.provision")

DEVICE_INFO_FIELDS = {"Model": "model", "IMEI": "imei", "FriendlyName": "friendly_name", "OS": "os",
                      "OSLanguage": "os_language", "PhoneNumber": "phone_number", "UserAgent": "user_agent",
                      "MobileOperator": "mobile_operator", "EnableOutboundSMS": "outbound_sms"}
"""settings:DeviceInformation/Set children -> device record keys."""

PERMISSIVE_POLICY = (
    ("DevicePasswordEnabled", "0"), ("AlphanumericDevicePasswordRequired", "0"),
    ("PasswordRecoveryEnabled", "0"), ("RequireStorageCardEncryption", "0"), ("AttachmentsEnabled", "1"),
    ("MinDevicePasswordLength", ""), ("MaxInactivityTimeDeviceLock", ""), ("MaxDevicePasswordFailedAttempts", ""),
    ("MaxAttachmentSize", ""), ("AllowSimpleDevicePassword", "1"), ("DevicePasswordExpiration", ""),
    ("DevicePasswordHistory", "0"), ("AllowStorageCard", "1"), ("AllowCamera", "1"),
    ("RequireDeviceEncryption", "0"), ("AllowUnsignedApplications", "1"), ("AllowUnsignedInstallationPackages", "1"),
    ("MinDevicePasswordComplexCharacters", "1"), ("AllowWiFi", "1"), ("AllowTextMessaging", "1"),
    ("AllowPOPIMAPEmail", "1"), ("AllowBluetooth", "2"), ("AllowIrDA", "1"), ("RequireManualSyncWhenRoaming", "0"),
    ("AllowDesktopSync", "1"), ("MaxCalendarAgeFilter", "0"), ("AllowHTMLEmail", "1"), ("MaxEmailAgeFilter", "0"),
    ("MaxEmailBodyTruncationSize", "-1"), ("MaxEmailHTMLBodyTruncationSize", "-1"),
    ("RequireSignedSMIMEMessages", "0"), ("RequireEncryptedSMIMEMessages", "0"), ("RequireSignedSMIMEAlgorithm", "0"),
    ("RequireEncryptionSMIMEAlgorithm", "0"), ("AllowSMIMEEncryptionAlgorithmNegotiation", "2"),
    ("AllowSMIMESoftCerts", "1"), ("AllowBrowser", "1"), ("AllowConsumerEmail", "1"), ("AllowRemoteDesktop", "1"),
    ("AllowInternetSharing", "1"),
)
"""(element, value) of the policy document; empty = unset. 12.1+ elements only go to 12.1+ clients."""
POLICY_12_0 = frozenset(name for name, _ in PERMISSIVE_POLICY[:11]) | {"DevicePasswordHistory"}


def device_information(elem: Element | None) -> dict[str, str]:
    if elem is None:
        return {}
    found = elem.find("Settings:Set")
    fields = found if found is not None else elem
    return {key: child.value_text()[:256] for child in fields
            if (key := DEVICE_INFO_FIELDS.get(child.name)) is not None}


def policy_document(req: EasRequest, requires_password: bool) -> Element:
    doc = E("Provision:EASProvisionDoc")
    for name, value in PERMISSIVE_POLICY:
        if req.v < 12.1 and name not in POLICY_12_0:
            continue
        if name == "DevicePasswordEnabled" and requires_password:
            value = "1"
        doc.append(E(f"Provision:{name}", value) if value else E(f"Provision:{name}"))
    return doc


def provision(eas: Eas, req: EasRequest) -> Any:
    return eas.write(req, lambda session: _provision(eas, session, req), light=True)


def _provision(eas: Eas, session: UserSession, req: EasRequest) -> EasResponse:
    body = req.body
    if body is None:
        return EasResponse(E("Provision:Provision", E("Provision:Status", "2")))
    record = state.load_device(session, req.device_id)
    out = E("Provision:Provision")
    info_elem = body.find("Settings:DeviceInformation")
    if info_elem is not None:
        record = {**record, "info": {**record.get("info", {}), **device_information(info_elem)}}
        out.append(E("Settings:DeviceInformation", E("Settings:Status", "1")))
    wipe = body.find("Provision:RemoteWipe")
    if wipe is None:
        wipe = body.find("Provision:AccountOnlyRemoteWipe")  # 16.1: the device erased our account only
    if wipe is not None:
        if wipe.findtext("Provision:Status") == "1" and record.get("wipe") in ("requested", "pending"):
            record.update(wipe="done", wiped_at=int(time.time()), policy_key=None, policy_state="wiped")
            log.warning("device confirmed remote wipe", extra={"event": "eas.wiped", "device": req.device_id,
                                                                "login": req.principal.login})
        state.touch_device(session, req.device_id, record)
        out.append(E("Provision:Status", "1"))
        return EasResponse(out)
    policies = body.find("Provision:Policies")
    policy = policies.find("Provision:Policy") if policies is not None else None
    if policy is None:
        out.append(E("Provision:Status", "2"))
        return EasResponse(out)
    policy_type = policy.findtext("Provision:PolicyType", "")
    out.append(E("Provision:Status", "1"))
    if record.get("wipe") in ("requested", "pending"):
        record["wipe"] = "pending"
        state.touch_device(session, req.device_id, record)
        account_only = record.get("wipe_kind") == "account" and req.v >= 16.1
        out.append(E("Provision:AccountOnlyRemoteWipe" if account_only else "Provision:RemoteWipe"))
        return EasResponse(out)
    answer = E("Provision:Policy", E("Provision:PolicyType", policy_type))
    out.append(E("Provision:Policies", answer))
    if policy_type != protocol.POLICY_TYPE:
        answer.append(E("Provision:Status", "3"))
        return EasResponse(out)
    acked_key = policy.findtext("Provision:PolicyKey")
    if acked_key is None:  # round trip 1: the policy and a temporary key
        temp = state.new_policy_key()
        record.update(temp_key=temp, policy_state="pending")
        answer.append(E("Provision:Status", "1"))
        answer.append(E("Provision:PolicyKey", temp))
        answer.append(E("Provision:Data", policy_document(req, eas.config.policy_requires_password)))
    elif req.device_id in state.NOT_PERSISTED_DEVICES or (acked_key and acked_key == record.get("temp_key")):
        final = state.new_policy_key()
        client_status = policy.findtext("Provision:Status", "1")
        record.update(policy_key=final, temp_key=None, policy_state="provisioned", policy_ack=client_status,
                      provisioned_at=int(time.time()))
        answer.append(E("Provision:Status", "1"))
        answer.append(E("Provision:PolicyKey", final))
    else:
        answer.append(E("Provision:Status", "5"))
    state.touch_device(session, req.device_id, record)
    return EasResponse(out)
