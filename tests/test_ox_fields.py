"""Every field of reference ox-webdav-xml.md §2.3-2.6 round-trips through the OX dialect over real HTTP,
and the OXtender manual's Annex B (chapter 11) acceptance list is covered field by field."""

from __future__ import annotations

import base64

import pytest

from oxsync.model import Module
from oxsync.model.contact import STRING_FIELDS
from oxsync.ox import install
from oxsync.ox.fields_contact import XML_NAME
from oxsync.store import accounts, removal
from tests.oxclient import OX_SERVER, OxClient, Resp

DAY = 86_400_000
T0 = 1_893_456_000_000  # 2030-01-01 00:00 UTC (a Tuesday)
PHOTO = bytes(range(256)) * 4

# Annex B (manual ch. 11): Outlook field -> the ox: element that carries it, per module.
ANNEX_B = {
    "contacts": [
        ("Nom complet Titre", "title"), ("Nom complet Prénom", "first_name"), ("Deuxième prénom", "second_name"),
        ("Nom complet Nom", "last_name"), ("Suffixe", "suffix"), ("Titre (poste)", "position"), ("Société", "company"),
        ("Tél. Bureau", "phone_business"), ("Tél. Domicile", "phone_home"), ("Télécopie bureau", "fax_business"),
        ("Téléphone mobile", "mobile1"), ("Bureau 2", "phone_business2"), ("Voiture", "phone_car"),
        ("Société (tél.)", "phone_company"), ("Domicile 2", "phone_home2"), ("Télécopie domicile", "fax_home"),
        ("Autre", "phone_other"), ("Autre télécopie", "fax_other"), ("Radiomessagerie", "pager"), ("Télex", "telex"),
        ("TTY/TDD", "tty_tdd"), ("Bureau Rue", "business_street"), ("Bureau Code postal", "business_postal_code"),
        ("Bureau Ville", "business_city"), ("Bureau Dép/Région", "business_state"), ("Bureau Pays", "business_country"),
        ("Domicile Rue", "street"), ("Domicile Code postal", "postal_code"), ("Domicile Ville", "city"),
        ("Domicile Dép/Région", "state"), ("Domicile Pays", "country"), ("Autre Rue", "second_street"),
        ("Autre Code postal", "second_postal_code"), ("Autre Ville", "second_city"), ("Autre Dép/Région", "second_state"),
        ("Autre Pays", "second_country"), ("Adresse de messagerie", "email1"), ("Adresse de messagerie 2", "email2"),
        ("Adresse de messagerie 3", "email3"), ("Page Web", "url"), ("Messagerie instantanée", "instant_messenger"),
        ("Commentaires", "note"), ("Catégories", "categories"), ("Privé", "private_flag"), ("Service", "department"),
        ("Bureau", "room_number"), ("Profession", "profession"), ("Responsable", "managers_name"),
        ("Assistant(e)", "assistants_name"), ("Surnom", "nickname"), ("Conjoint(e)", "spouse_name"),
        ("Anniversaire", "birthday"), ("Anniversaire de mariage", "anniversary"),
    ],
    "calendar": [
        ("À (participants)", "participants"), ("Objet", "title"), ("Emplacement", "location"),
        ("Catégorie du calendrier", "color_label"), ("Début", "start_date"), ("Journée entière", "full_time"),
        ("Heure de fin", "end_date"), ("Rappel", "alarm"), ("Disponibilité", "shown_as"), ("Commentaires", "note"),
        ("Catégories", "categories"), ("Privé", "private_flag"),
    ],
    "tasks": [
        ("À (participants)", "participants"), ("Objet", "title"), ("Échéance", "end_date"), ("Début", "start_date"),
        ("État", "status"), ("Priorité", "priority"), ("% achevé", "percent_completed"), ("Rappel", "alarm"),
        ("Commentaires", "note"), ("Catégories", "categories"), ("Privé", "private_flag"),
        ("Travail total", "target_duration"), ("Travail réel", "actual_duration"), ("Sociétés", "companies"),
        ("Kilométrage", "trip_meter"), ("Informations facturation", "billing_information"),
    ],
}


def contact_fields() -> dict[str, object]:
    fields: dict[str, object] = {XML_NAME.get(n, n): f"v-{n}-é&<" for n in STRING_FIELDS}
    fields["email1"], fields["email2"], fields["email3"] = "a@example.org", "b@example.org", "c@example.org"
    fields.update(birthday=-315_619_200_000, anniversary=T0, defaultaddress=2, categories="VIP,Client",
                  private_flag=True, image1=base64.b64encode(PHOTO).decode(), image_content_type="image/png")
    return fields


@pytest.fixture
def env(live_server, store, world):  # type: ignore[no-untyped-def]
    with store.transaction(world.tenant_id, write=True) as tx:
        room = accounts.create_resource(tx, "room1", "room1@example.com", display_name="Room 1")
    running = live_server(store, setup=install, server=OX_SERVER)
    client = OxClient(running.port, "alice", "alice-pw")
    return client, world, room.id


def _read(client: OxClient, servlet: str, folder_id: int, object_id: int) -> Resp:
    [r] = client.propfind(servlet, {"object_id": object_id, "folder_id": folder_id})
    assert r.status == "200", r.description
    return r


def test_contact_every_field_round_trips(env) -> None:  # type: ignore[no-untyped-def]
    client, world, _ = env
    folder = world.default_folder(world.alice, Module.CONTACT)
    sent = contact_fields()
    [r] = client.proppatch("contacts", {"folder_id": folder, **sent})
    assert r.status == "200", r.description
    got = _read(client, "contacts", folder, int(r.href))
    for name, value in sent.items():
        assert got.text(name) == str(value).replace("True", "true"), name
    assert got.text("fileas") == sent["file_as"]  # the 2007 spelling goes out too
    # an empty element clears; an absent one stays
    [u] = client.proppatch("contacts", {"object_id": r.href, "folder_id": folder, "last_modified": got.text("last_modified"),
                                        "nickname": None, "image1": None})
    assert u.status == "200", u.description
    again = _read(client, "contacts", folder, int(r.href))
    assert again.text("nickname") is None and again.text("image1") is None
    assert again.text("company") == sent["company"]


def test_distribution_list_round_trips(env) -> None:  # type: ignore[no-untyped-def]
    client, world, _ = env
    folder = world.default_folder(world.alice, Module.CONTACT)
    [member] = client.proppatch("contacts", {"folder_id": folder, "last_name": "Doe", "email1": "jane@example.org"})
    members = (f'<ox:email ox:id="{member.href}" ox:folder_id="{folder}" ox:displayname="Jane Doe" ox:emailfield="1">'
               'jane@example.org</ox:email><ox:email id="0" folder_id="0" displayname="x@y.org" emailfield="0">x@y.org</ox:email>')
    [r] = client.proppatch("contacts", {"folder_id": folder, "displayname": "Team", "distributionlist_flag": True,
                                        "distributionlist": members})
    assert r.status == "200", r.description
    got = _read(client, "contacts", folder, int(r.href))
    assert got.text("distributionlist_flag") == "true"
    emails = list(got.props["distributionlist"])
    assert [e.text for e in emails] == ["jane@example.org", "x@y.org"]
    first = {k.split("}")[-1]: v for k, v in emails[0].attrib.items()}
    assert first == {"id": member.href, "folder_id": str(folder), "displayname": "Jane Doe", "emailfield": "1"}


def test_appointment_every_field_round_trips(env) -> None:  # type: ignore[no-untyped-def]
    client, world, room = env
    folder = world.default_folder(world.alice, Module.CALENDAR)
    participants = (f'<ox:user ox:confirm="accept">{world.alice}</ox:user><ox:user>{world.bob}</ox:user>'
                    f'<ox:group>{world.team}</ox:group><ox:resource>{room}</ox:resource>'
                    '<ox:user ox:external="true" ox:displayname="Ext" ox:mail="ext@example.org">0</ox:user>')
    sent = {"folder_id": folder, "title": "Standup", "location": "Room 1", "note": "agenda", "uid": "uid-123",
            "start_date": T0 + 9 * 3_600_000 + 6 * DAY, "end_date": T0 + 10 * 3_600_000 + 6 * DAY,
            "full_time": False, "shown_as": 3, "alarm_flag": True, "alarm": 15, "color_label": 4,
            "categories": "Work", "private_flag": False,
            "recurrence_type": "weekly", "interval": 1, "days": 10, "occurrences": 10,
            "deleteexceptions": T0 + 8 * DAY, "participants": participants}
    [r] = client.proppatch("calendar", sent)
    assert r.status == "200", r.description
    assert r.text("recurrence_id") == r.href
    got = _read(client, "calendar", folder, int(r.href))
    for name in ("title", "location", "note", "uid", "start_date", "end_date", "shown_as", "alarm", "color_label",
                 "categories", "recurrence_type", "interval", "days", "occurrences", "deleteexceptions"):
        assert got.text(name) == str(sent[name]), name
    assert got.text("full_time") == "false" and got.text("alarm_flag") == "true"
    parts = {(etree_local(p), p.text, p.get(f"{{{OX}}}confirm"), p.get(f"{{{OX}}}external")) for p in got.props["participants"]}
    assert ("user", str(world.alice), "accept", "false") in parts
    assert ("user", str(world.bob), "none", "false") in parts  # bob as user and via the team group, once
    assert ("resource", str(room), None, "false") in parts
    assert any(p[0] == "user" and p[3] == "true" for p in parts)
    # full-day: 00:00 UTC boundaries; alarm_flag=false removes the alarm
    [f] = client.proppatch("calendar", {"folder_id": folder, "title": "Holiday", "full_time": True,
                                        "start_date": T0, "end_date": T0 + DAY, "alarm_flag": False, "alarm": 5})
    day = _read(client, "calendar", folder, int(f.href))
    assert (day.text("start_date"), day.text("end_date"), day.text("alarm_flag")) == (str(T0), str(T0 + DAY), "false")
    assert day.text("alarm") is None


@pytest.mark.parametrize("pattern", [
    {"recurrence_type": "daily", "interval": 2, "until": T0 + 20 * DAY},
    {"recurrence_type": "monthly", "interval": 1, "day_in_month": 15},
    {"recurrence_type": "monthly", "interval": 2, "days": 4, "day_in_month": 5},
    {"recurrence_type": "yearly", "interval": 1, "month": 0, "day_in_month": 1},
    {"recurrence_type": "yearly", "interval": 1, "month": 10, "days": 16, "day_in_month": 4},
])
def test_recurrence_patterns_round_trip(env, pattern) -> None:  # type: ignore[no-untyped-def]
    client, world, _ = env
    folder = world.default_folder(world.alice, Module.CALENDAR)
    [r] = client.proppatch("calendar", {"folder_id": folder, "title": "Series", "start_date": T0 + 3_600_000,
                                        "end_date": T0 + 7_200_000, "ignore_conflicts": True, **pattern})
    assert r.status == "200", r.description
    got = _read(client, "calendar", folder, int(r.href))
    for name, value in pattern.items():
        assert got.text(name) == str(value), name


def test_task_every_field_round_trips(env) -> None:  # type: ignore[no-untyped-def]
    client, world, _ = env
    folder = world.default_folder(world.alice, Module.TASK)
    sent = {"folder_id": folder, "title": "Report", "note": "draft", "start_date": T0, "end_date": T0 + 7 * DAY,
            "status": 2, "priority": 3, "percent_completed": 40, "date_completed": T0 + 3 * DAY + 1000,
            "alarm_flag": True, "alarm": T0 + 2 * DAY + 3_600_000, "target_duration": 120, "actual_duration": 90,
            "target_costs": "12.50", "actual_costs": "10.25", "currency": "EUR", "trip_meter": "42 km",
            "billing_information": "ACME-7", "companies": "ACME", "categories": "Q1", "private_flag": True,
            "uid": "task-uid-1", "participants": f'<ox:user ox:confirm="accept">{world.alice}</ox:user><ox:user>{world.bob}</ox:user>'}
    [r] = client.proppatch("tasks", sent)
    assert r.status == "200", r.description
    got = _read(client, "tasks", folder, int(r.href))
    for name, value in sent.items():
        if name in ("folder_id", "participants"):
            continue
        assert got.text(name) == str(value).replace("True", "true"), name
    assert {p.text for p in got.props["participants"]} == {str(world.alice), str(world.bob)}
    # KDE's spelling is accepted on input
    [u] = client.proppatch("tasks", {"object_id": r.href, "folder_id": folder, "last_modified": got.text("last_modified"),
                                     "percent_complete": 75, "recurrence_type": "none"})
    assert u.status == "200", u.description
    assert _read(client, "tasks", folder, int(r.href)).text("percent_completed") == "75"


def test_groupuser_users_groups_resources_and_deletes(env, store) -> None:  # type: ignore[no-untyped-def]
    client, world, room = env
    [r] = client.propfind("groupuser", {"user": "*", "group": "*", "resource": "*", "lastsync": 0})
    users = {u.findtext(f"{{{OX}}}uid"): u for u in r.props["users"]}
    assert set(users) == {str(world.alice), str(world.bob), str(world.carol)}
    me = users[str(world.alice)]
    assert me.findtext(f"{{{OX}}}myidentity") == "true" and me.findtext(f"{{{OX}}}context_id") == str(world.tenant_id)
    assert users[str(world.bob)].findtext(f"{{{OX}}}myidentity") is None
    assert me.find(f"{{{OX}}}email1").get("isInternal") == "true"
    assert me.findtext(f"{{{OX}}}last_name") == "Martin"
    groups = {g.findtext(f"{{{OX}}}uid"): g for g in r.props["groups"]}
    assert [m.text for m in groups[str(world.team)].iter(f"{{{OX}}}memberuid")] == [str(world.alice), str(world.bob)]
    assert groups[str(world.team)].findtext(f"{{{OX}}}objectstatus") == "CREATE"
    [res] = list(r.props["resources"])
    assert (res.findtext(f"{{{OX}}}uid"), res.findtext(f"{{{OX}}}email1")) == (str(room), "room1@example.com")
    stamp = max(int(u.findtext(f"{{{OX}}}last_modified")) for u in users.values())
    with store.transaction(world.tenant_id, write=True) as tx:
        removal.delete_group(tx, world.team)
        accounts.delete_resource(tx, room)
    [d] = client.propfind("groupuser", {"group": "*", "resource": "*", "lastsync": stamp})
    assert [(g.findtext(f"{{{OX}}}uid"), g.findtext(f"{{{OX}}}object_status")) for g in d.props["groups"]] == [
        (str(world.team), "DELETE")]
    assert [(x.findtext(f"{{{OX}}}uid"), x.findtext(f"{{{OX}}}object_status")) for x in d.props["resources"]] == [
        (str(room), "DELETE")]


@pytest.mark.parametrize("servlet", sorted(ANNEX_B))
def test_annex_b_fields_are_carried(env, servlet) -> None:  # type: ignore[no-untyped-def]
    """Every Annex B row is written by the server after a create that sets it."""
    client, world, _ = env
    module = {"contacts": Module.CONTACT, "calendar": Module.CALENDAR, "tasks": Module.TASK}[servlet]
    folder = world.default_folder(world.alice, module)
    values = {
        "contacts": {**contact_fields(), "private_flag": True},
        "calendar": {"title": "A", "location": "L", "color_label": 3, "start_date": T0, "end_date": T0 + DAY,
                     "full_time": True, "alarm": 10, "alarm_flag": True, "shown_as": 2, "note": "n",
                     "categories": "c", "private_flag": True,
                     "participants": f"<ox:user>{world.alice}</ox:user><ox:user>{world.bob}</ox:user>"},
        "tasks": {"title": "T", "end_date": T0 + DAY, "start_date": T0, "status": 4, "priority": 1,
                  "percent_completed": 10, "alarm": T0, "alarm_flag": True, "note": "n", "categories": "c",
                  "private_flag": True, "target_duration": 5, "actual_duration": 6, "companies": "X",
                  "trip_meter": "3", "billing_information": "B",
                  "participants": f"<ox:user>{world.alice}</ox:user>"},
    }[servlet]
    [r] = client.proppatch(servlet, {"folder_id": folder, **values})
    assert r.status == "200", r.description
    got = _read(client, servlet, folder, int(r.href))
    missing = [(label, xml) for label, xml in ANNEX_B[servlet] if got.text(xml) in (None, "")
               and xml not in got.props]
    assert not missing


OX = "http://www.open-xchange.org"


def etree_local(element) -> str:  # type: ignore[no-untyped-def]
    return element.tag.split("}")[-1]


def test_writes_are_canonical_for_other_dialects(env, store) -> None:  # type: ignore[no-untyped-def]
    """What the OX dialect stores is plain model data: UTC datetimes, all-day dates, a UID, OX recurrence."""
    from datetime import UTC, date, datetime

    from oxsync.model import Appointment, RecurrenceType

    client, world, _ = env
    folder = world.default_folder(world.alice, Module.CALENDAR)
    [timed] = client.proppatch("calendar", {"folder_id": folder, "title": "T", "start_date": T0 + 3_600_000,
                                            "end_date": T0 + 7_200_000, "recurrence_type": "weekly", "days": 4,
                                            "interval": 1, "until": T0 + 14 * DAY})
    [allday] = client.proppatch("calendar", {"folder_id": folder, "title": "D", "full_time": True, "start_date": T0, "ignore_conflicts": True,
                                             "end_date": T0 + DAY})
    assert timed.status == allday.status == "200", (timed.description, allday.description)
    with world.as_user(world.alice) as session:
        t = session.get_object(folder, int(timed.href))
        d = session.get_object(folder, int(allday.href))
    assert isinstance(t, Appointment) and isinstance(d, Appointment)
    assert t.start_date == datetime(2030, 1, 1, 1, 0, tzinfo=UTC) and t.uid
    assert t.recurrence is not None and t.recurrence.type == RecurrenceType.WEEKLY
    assert t.recurrence.until == date(2030, 1, 15)
    assert (d.start_date, d.end_date, d.full_time) == (date(2030, 1, 1), date(2030, 1, 2), True) and d.uid != t.uid
