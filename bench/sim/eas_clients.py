"""Simulated ActiveSync devices: an iPhone (14.1/16.1, long Ping heartbeats, big windows) and an
Android phone (12.1/14.0, small windows, short heartbeats and a GetChanges Sync poll after each Ping).

Both: Provision (two round trips), FolderSync, windowed initial Sync of contacts/calendar/tasks, then
a Ping loop; a Ping that reports changes triggers a Sync of those folders, and the time from the
commit (the shared CommitLog) to the Ping answer is recorded as "eas.Ping.wake".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.sim.base import Context, RequestFailed, SimClient, Stopped, expect
from bench.sim.seed import SimUser
from oxsync.eas.mapping.timezone import encode_timezone
from oxsync.eas.wbxml import E, Element, decode, encode

CLASSES = {"contacts": "Contacts", "calendar": "Calendar", "tasks": "Tasks"}


class EasDevice(SimClient):
    """Common ActiveSync device logic; subclasses set the version, window and heartbeat policy."""

    kind = "eas"
    device_type = "iPhone"
    user_agent = "Apple-iPhone9C1/1402.100"
    window = 100
    calendar_filter = "5"  # one month back

    def __init__(self, ctx: Context, user: SimUser, index: int) -> None:
        super().__init__(ctx, user, index)
        self.version = "14.1"
        self.device_id = f"sim{self.kind}{index:05d}"
        self.policy_key: str | None = None
        self.keys: dict[str, str] = {}
        self.synced_at: dict[str, float] = {}
        self.known: dict[str, list[str]] = {}
        self.folders = {str(user.contacts): "Contacts", str(user.calendar): "Calendar", str(user.tasks): "Tasks"}
        self.next_edit = 0.0

    # ------------------------------------------------------------------ wire

    def post(self, cmd: str, body: Element | None, *, timeout: float | None = None) -> Element | None:
        path = (f"/Microsoft-Server-ActiveSync?Cmd={cmd}&User={self.user.login}&DeviceId={self.device_id}"
                f"&DeviceType={self.device_type}")
        headers = {"MS-ASProtocolVersion": self.version, "User-Agent": self.user_agent,
                   "Content-Type": "application/vnd.ms-sync.wbxml"}
        if self.policy_key is not None:
            headers["X-MS-PolicyKey"] = self.policy_key
        status, got, raw = self.http("POST", path, encode(body) if body is not None else None, headers, timeout=timeout)
        if status == 449:
            self.policy_key = None
            raise RequestFailed("449: provisioning required")
        expect(status == 200, f"{cmd}: HTTP {status} {raw[:200]!r}")
        return decode(raw) if raw else None

    # ------------------------------------------------------------------ flows

    def setup(self) -> None:
        self.timed("eas.Provision", self.provision)
        self.timed("eas.FolderSync", self.folder_sync)
        for folder in self.folders:
            self.initial_sync(folder)
        self.next_edit = time.perf_counter() + self.jitter(self.ctx.options.eas_edit_every)

    def provision(self) -> None:
        info = [E("Settings:DeviceInformation", E("Settings:Set", E("Settings:Model", self.device_type)))] \
            if self.version >= "14.1" else []
        policy = E("Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"))
        first = self.post("Provision", E("Provision:Provision", *info, E("Provision:Policies", policy)))
        temp = first.find("Provision:Policies").find("Provision:Policy").findtext("Provision:PolicyKey") if first else None
        expect(temp, "Provision: no temporary policy key")
        second = self.post("Provision", E("Provision:Provision", E("Provision:Policies", E(
            "Provision:Policy", E("Provision:PolicyType", "MS-EAS-Provisioning-WBXML"),
            E("Provision:PolicyKey", temp), E("Provision:Status", "1")))))
        final = second.find("Provision:Policies").find("Provision:Policy").findtext("Provision:PolicyKey") if second else None
        expect(final, "Provision: no final policy key")
        self.policy_key = final

    def folder_sync(self) -> None:
        reply = self.post("FolderSync", E("FolderHierarchy:FolderSync", E("FolderHierarchy:SyncKey", "0")))
        expect(reply is not None and reply.findtext("FolderHierarchy:Status") == "1", f"FolderSync: {reply}")
        changes = reply.find("FolderHierarchy:Changes")  # type: ignore[union-attr]
        ids = {a.findtext("FolderHierarchy:ServerId", "") for a in changes.findall("FolderHierarchy:Add")} if changes else set()
        expect(set(self.folders) <= ids, f"FolderSync lacks default folders {set(self.folders) - ids}")

    def options(self, folder: str) -> list[Element]:
        cls = self.folders[folder]
        opts = []
        if cls == "Calendar":
            opts.append(E("AirSync:FilterType", self.calendar_filter))
        if cls != "Tasks" or self.version >= "12.0":
            opts.append(E("AirSyncBase:BodyPreference", E("AirSyncBase:Type", "1"),
                          E("AirSyncBase:TruncationSize", "32768")))
        return opts

    def collection(self, folder: str, *, window: int | None = None, commands: list[Element] | None = None,
                   get_changes: bool = True) -> Element:
        key = self.keys.get(folder, "0")
        coll = E("AirSync:Collection", E("AirSync:SyncKey", key), E("AirSync:CollectionId", folder))
        if key != "0":
            coll.append(E("AirSync:DeletesAsMoves", "1"))
            if not get_changes or commands:
                coll.append(E("AirSync:GetChanges", "1" if get_changes else "0"))
            coll.append(E("AirSync:WindowSize", str(window or self.window)))
            coll.append(E("AirSync:Options", *self.options(folder)))
        if commands:
            coll.append(E("AirSync:Commands", *commands))
        return coll

    def sync(self, folders: list[str], *, commands: list[Element] | None = None) -> bool:
        """One Sync request over `folders`; returns whether the server has more for any of them."""
        reply = self.post("Sync", E("AirSync:Sync", E("AirSync:Collections", *[
            self.collection(f, commands=commands if len(folders) == 1 else None) for f in folders])))
        done = time.perf_counter()
        if reply is None:  # empty answer: nothing changed (12.1+)
            for f in folders:
                self.synced_at[f] = done
            return False
        expect(reply.find("AirSync:Collections") is not None, f"Sync: {reply}")
        more = False
        for coll in reply.find("AirSync:Collections").findall("AirSync:Collection"):  # type: ignore[union-attr]
            folder = coll.findtext("AirSync:CollectionId", "")
            status = coll.findtext("AirSync:Status", "1")
            if status == "3":  # invalid key: start over for this folder
                self.keys.pop(folder, None)
                raise RequestFailed(f"Sync {folder}: Status 3")
            expect(status == "1", f"Sync {folder}: Status {status}")
            self.keys[folder] = coll.findtext("AirSync:SyncKey", self.keys.get(folder, "0"))
            self.synced_at[folder] = done
            more = more or coll.find("AirSync:MoreAvailable") is not None
            cmds = coll.find("AirSync:Commands")
            if cmds is not None:
                ids = self.known.setdefault(folder, [])
                ids.extend(a.findtext("AirSync:ServerId", "") for a in cmds.findall("AirSync:Add") if len(ids) < 50)
        return more

    def initial_sync(self, folder: str) -> None:
        self.keys.pop(folder, None)
        self.timed("eas.Sync", lambda: self.sync([folder]))
        while self.timed("eas.Sync", lambda: self.sync([folder])):
            if self.ctx.stop.is_set():
                raise Stopped

    # ------------------------------------------------------------------ push

    def heartbeat(self) -> int:
        low, high = self.ctx.options.heartbeat
        return self.rng.randint(low, high)

    def ping(self) -> list[str]:
        """Park a Ping; returns the folders with changes (empty when the heartbeat expired)."""
        beat = self.heartbeat()
        body = E("Ping:Ping", E("Ping:HeartbeatInterval", str(beat)), E("Ping:Folders", *[
            E("Ping:Folder", E("Ping:Id", f), E("Ping:Class", c)) for f, c in self.folders.items()]))
        started = time.perf_counter()
        try:
            reply = self.post("Ping", body, timeout=beat + 60)
        except Stopped:
            raise
        except Exception as exc:  # noqa: BLE001
            if self.ctx.stop.is_set():
                raise Stopped from exc
            self.ctx.recorder.record("eas.Ping.wake", started, time.perf_counter() - started, False)
            raise RequestFailed(f"Ping: {exc!r}") from exc
        answered = time.perf_counter()
        status = reply.findtext("Ping:Status") if reply is not None else None
        if status == "2":
            folders = [f.value_text() for f in reply.find("Ping:Folders")]  # type: ignore[union-attr]
            firsts = self.pending_commits(folders)
            for _ in range(20):  # the answer can beat the writer's own bookkeeping of its commit: wait for it
                if firsts:
                    break
                time.sleep(0.025)
                firsts = self.pending_commits(folders)
            if firsts:  # from the commit, or from the Ping if the commit came while the device was busy
                first = max(min(firsts), started)
                self.ctx.recorder.record("eas.Ping.wake", first, max(0.0, answered - first), True)
                if answered - first > 3 and len(self.ctx.slow_pushes) < 50:
                    self.ctx.slow_pushes.append({
                        "device": self.device_id, "version": self.version, "folders": folders,
                        "ping_sent": round(started - self.ctx.t0, 3), "answered": round(answered - self.ctx.t0, 3),
                        "commits": {f: [round(t - self.ctx.t0, 3) for t in self.ctx.commits.all(int(f))] for f in folders},
                        "synced_at": {f: round(self.synced_at.get(f, 0) - self.ctx.t0, 3) for f in folders}})
            return folders
        if status == "1":  # heartbeat expired: a commit we know of that is well before now was missed
            missed = [f for f in self.folders
                      if (t := self.ctx.commits.first_since(int(f), self.synced_at.get(f, 0))) and t < answered - 5]
            if missed:
                self.ctx.recorder.record("eas.Ping.wake", started, answered - started, False)
                return missed
            return []
        self.ctx.recorder.record("eas.Ping.wake", started, answered - started, False)
        if status == "7":  # folder hierarchy changed
            self.timed("eas.FolderSync", self.folder_sync)
        raise RequestFailed(f"Ping Status {status}")

    def pending_commits(self, folders: list[str]) -> list[float]:
        """Logged commits in `folders` that this device has not synced yet."""
        return [t for f in folders if (t := self.ctx.commits.first_since(int(f), self.synced_at.get(f, 0))) is not None]

    def step(self) -> None:
        changed = self.ping()
        for folder in changed:
            if folder in self.folders:
                while self.timed("eas.Sync", lambda f=folder: self.sync([f])):  # type: ignore[misc]
                    pass
        self.after_ping(bool(changed))
        if time.perf_counter() >= self.next_edit:  # edits wait for the Ping to return (not simulator lag)
            if self.ctx.stop.is_set():
                raise Stopped
            self.edit()
            self.next_edit = time.perf_counter() + self.jitter(self.ctx.options.eas_edit_every)

    def after_ping(self, changed: bool) -> None:
        """Hook for device-specific polling after a Ping answer."""

    # ------------------------------------------------------------------ edits

    def edit(self) -> None:
        n = self.rng.randrange(1000000)
        if self.rng.random() < 0.5:
            folder = str(self.user.contacts)
            data = E("AirSync:ApplicationData", E("Contacts:FirstName", f"Sim{n}"), E("Contacts:LastName", self.user.login),
                     E("Contacts:Email1Address", f"sim{n}@phone.example"))
            known = self.known.get(folder, [])
            if known and self.rng.random() < 0.5:
                command = E("AirSync:Change", E("AirSync:ServerId", self.rng.choice(known)), data)
            else:
                command = E("AirSync:Add", E("AirSync:ClientId", f"c{n}"), data)
        else:
            folder = str(self.user.calendar)
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=self.rng.randint(1, 20))
            fields = [E("Calendar:StartTime", start.strftime("%Y%m%dT%H%M%SZ")),
                      E("Calendar:EndTime", (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")),
                      E("Calendar:Subject", f"Phone meeting {n}"), E("Calendar:BusyStatus", "2"),
                      E("Calendar:Sensitivity", "0")]
            if self.version < "16.0":
                fields.insert(0, E("Calendar:TimeZone", encode_timezone("Europe/Paris", start.year)))
                fields.append(E("Calendar:MeetingStatus", "0"))
            command = E("AirSync:Add", E("AirSync:ClientId", f"c{n}"), E("AirSync:ApplicationData", *fields))

        def run() -> None:
            self.sync([folder], commands=[command])
            # stamped at the reply, not after it: the device's own change is already synced (not pending)
            self.ctx.commits.committed([int(folder)], self.synced_at[folder])

        self.timed("eas.Sync.add", run)


class IPhone(EasDevice):
    kind = "iphone"

    def __init__(self, ctx: Context, user: SimUser, index: int) -> None:
        super().__init__(ctx, user, index)
        self.version = "16.1" if index % 2 else "14.1"


class Android(EasDevice):
    """Small windows, short heartbeats, and a GetChanges Sync over all folders after each Ping."""

    kind = "android"
    device_type = "Android"
    user_agent = "Android-SAMSUNG-SM-G991B/101.10"
    window = 25
    calendar_filter = "4"  # two weeks back

    def __init__(self, ctx: Context, user: SimUser, index: int) -> None:
        super().__init__(ctx, user, index)
        self.version = "12.1" if index % 2 else "14.0"

    def heartbeat(self) -> int:
        return self.ctx.options.android_heartbeat

    def after_ping(self, changed: bool) -> None:
        if not changed:
            self.timed("eas.Sync", lambda: self.sync(list(self.folders)))
