"""Time-zone names for iCalendar: TZID -> IANA, and VTIMEZONE text for IANA zones.

The model keeps one IANA name per series (recurrence expands in it), so every TZID a client sends must
become an IANA name: IANA names pass through, Windows names (Outlook's TZID) go through the CLDR-style
table below, prefixed names (`/mozilla.org/20070129_1/Europe/Berlin`) lose their prefix, and a custom
VTIMEZONE (`Customized Time Zone`) is matched by its UTC offsets. Output VTIMEZONEs use yearly RRULEs
(what Outlook expects) and fall back to explicit RDATEs for zones whose rules are irregular.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil.rrule import YEARLY, rrule, weekday

__all__ = ["WINDOWS_TO_IANA", "guess_iana", "iana_name", "vtimezone", "windows_name"]

# Windows time-zone key -> IANA zone (CLDR windowsZones, territory "001"), the zones Outlook emits.
WINDOWS_TO_IANA: dict[str, str] = {
    "Dateline Standard Time": "Etc/GMT+12", "UTC-11": "Etc/GMT+11", "Aleutian Standard Time": "America/Adak",
    "Hawaiian Standard Time": "Pacific/Honolulu", "Marquesas Standard Time": "Pacific/Marquesas",
    "Alaskan Standard Time": "America/Anchorage", "UTC-09": "Etc/GMT+9",
    "Pacific Standard Time (Mexico)": "America/Tijuana", "UTC-08": "Etc/GMT+8",
    "Pacific Standard Time": "America/Los_Angeles", "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time (Mexico)": "America/Mazatlan", "Mountain Standard Time": "America/Denver",
    "Yukon Standard Time": "America/Whitehorse", "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago", "Easter Island Standard Time": "Pacific/Easter",
    "Central Standard Time (Mexico)": "America/Mexico_City", "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota", "Eastern Standard Time (Mexico)": "America/Cancun",
    "Eastern Standard Time": "America/New_York", "Haiti Standard Time": "America/Port-au-Prince",
    "Cuba Standard Time": "America/Havana", "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "Turks And Caicos Standard Time": "America/Grand_Turk", "Paraguay Standard Time": "America/Asuncion",
    "Atlantic Standard Time": "America/Halifax", "Venezuela Standard Time": "America/Caracas",
    "Central Brazilian Standard Time": "America/Cuiaba", "SA Western Standard Time": "America/La_Paz",
    "Pacific SA Standard Time": "America/Santiago", "Newfoundland Standard Time": "America/St_Johns",
    "Tocantins Standard Time": "America/Araguaina", "E. South America Standard Time": "America/Sao_Paulo",
    "SA Eastern Standard Time": "America/Cayenne",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "Greenland Standard Time": "America/Nuuk", "Montevideo Standard Time": "America/Montevideo",
    "Magallanes Standard Time": "America/Punta_Arenas", "Saint Pierre Standard Time": "America/Miquelon",
    "Bahia Standard Time": "America/Bahia", "UTC-02": "Etc/GMT+2", "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde", "UTC": "UTC", "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London", "Greenwich Standard Time": "Atlantic/Reykjavik",
    "Sao Tome Standard Time": "Africa/Sao_Tome", "Morocco Standard Time": "Africa/Casablanca",
    "W. Europe Standard Time": "Europe/Berlin", "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris", "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos", "Jordan Standard Time": "Asia/Amman",
    "GTB Standard Time": "Europe/Bucharest", "Middle East Standard Time": "Asia/Beirut",
    "Egypt Standard Time": "Africa/Cairo", "E. Europe Standard Time": "Europe/Chisinau",
    "Syria Standard Time": "Asia/Damascus", "West Bank Standard Time": "Asia/Hebron",
    "South Africa Standard Time": "Africa/Johannesburg", "FLE Standard Time": "Europe/Kyiv",
    "Israel Standard Time": "Asia/Jerusalem", "South Sudan Standard Time": "Africa/Juba",
    "Kaliningrad Standard Time": "Europe/Kaliningrad", "Sudan Standard Time": "Africa/Khartoum",
    "Libya Standard Time": "Africa/Tripoli", "Namibia Standard Time": "Africa/Windhoek",
    "Arabic Standard Time": "Asia/Baghdad", "Turkey Standard Time": "Europe/Istanbul",
    "Arab Standard Time": "Asia/Riyadh", "Belarus Standard Time": "Europe/Minsk",
    "Russian Standard Time": "Europe/Moscow", "E. Africa Standard Time": "Africa/Nairobi",
    "Volgograd Standard Time": "Europe/Volgograd", "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai", "Astrakhan Standard Time": "Europe/Astrakhan",
    "Azerbaijan Standard Time": "Asia/Baku", "Russia Time Zone 3": "Europe/Samara",
    "Mauritius Standard Time": "Indian/Mauritius", "Saratov Standard Time": "Europe/Saratov",
    "Georgian Standard Time": "Asia/Tbilisi", "Caucasus Standard Time": "Asia/Yerevan",
    "Afghanistan Standard Time": "Asia/Kabul", "West Asia Standard Time": "Asia/Tashkent",
    "Ekaterinburg Standard Time": "Asia/Yekaterinburg", "Pakistan Standard Time": "Asia/Karachi",
    "Qyzylorda Standard Time": "Asia/Qyzylorda", "India Standard Time": "Asia/Kolkata",
    "Sri Lanka Standard Time": "Asia/Colombo", "Nepal Standard Time": "Asia/Kathmandu",
    "Central Asia Standard Time": "Asia/Bishkek", "Bangladesh Standard Time": "Asia/Dhaka",
    "Omsk Standard Time": "Asia/Omsk", "Myanmar Standard Time": "Asia/Yangon",
    "SE Asia Standard Time": "Asia/Bangkok", "Altai Standard Time": "Asia/Barnaul",
    "W. Mongolia Standard Time": "Asia/Hovd", "North Asia Standard Time": "Asia/Krasnoyarsk",
    "N. Central Asia Standard Time": "Asia/Novosibirsk", "Tomsk Standard Time": "Asia/Tomsk",
    "China Standard Time": "Asia/Shanghai", "North Asia East Standard Time": "Asia/Irkutsk",
    "Singapore Standard Time": "Asia/Singapore", "W. Australia Standard Time": "Australia/Perth",
    "Taipei Standard Time": "Asia/Taipei", "Ulaanbaatar Standard Time": "Asia/Ulaanbaatar",
    "Aus Central W. Standard Time": "Australia/Eucla", "Transbaikal Standard Time": "Asia/Chita",
    "Tokyo Standard Time": "Asia/Tokyo", "North Korea Standard Time": "Asia/Pyongyang",
    "Korea Standard Time": "Asia/Seoul", "Yakutsk Standard Time": "Asia/Yakutsk",
    "Cen. Australia Standard Time": "Australia/Adelaide", "AUS Central Standard Time": "Australia/Darwin",
    "E. Australia Standard Time": "Australia/Brisbane", "AUS Eastern Standard Time": "Australia/Sydney",
    "West Pacific Standard Time": "Pacific/Port_Moresby", "Tasmania Standard Time": "Australia/Hobart",
    "Vladivostok Standard Time": "Asia/Vladivostok", "Lord Howe Standard Time": "Australia/Lord_Howe",
    "Bougainville Standard Time": "Pacific/Bougainville", "Russia Time Zone 10": "Asia/Srednekolymsk",
    "Magadan Standard Time": "Asia/Magadan", "Norfolk Standard Time": "Pacific/Norfolk",
    "Sakhalin Standard Time": "Asia/Sakhalin", "Central Pacific Standard Time": "Pacific/Guadalcanal",
    "Russia Time Zone 11": "Asia/Kamchatka", "New Zealand Standard Time": "Pacific/Auckland",
    "UTC+12": "Etc/GMT-12", "Fiji Standard Time": "Pacific/Fiji", "Chatham Islands Standard Time":
    "Pacific/Chatham", "UTC+13": "Etc/GMT-13", "Tonga Standard Time": "Pacific/Tongatapu",
    "Samoa Standard Time": "Pacific/Apia", "Line Islands Standard Time": "Pacific/Kiritimati",
}
_WINDOWS_FOLDED = {name.casefold(): iana for name, iana in WINDOWS_TO_IANA.items()}
_IANA_TO_WINDOWS = {iana: name for name, iana in reversed(WINDOWS_TO_IANA.items())}
_UTC_NAMES = {"utc", "gmt", "z", "etc/utc", "etc/gmt", "universal", "zulu"}


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def iana_name(tzid: str) -> str | None:
    """The IANA zone a TZID names (IANA, Windows or prefixed), None if it names none."""
    tzid = tzid.strip().strip('"')
    if tzid.casefold() in _UTC_NAMES:
        return "UTC"
    if tzid in _known_zones():
        return tzid
    windows = _WINDOWS_FOLDED.get(tzid.casefold())
    if windows:
        return windows
    parts = [part for part in tzid.split("/") if part]
    for first in range(1, len(parts)):  # /mozilla.org/20070129_1/Europe/Berlin, /softwarestudio.org/...
        candidate = "/".join(parts[first:])
        if candidate in _known_zones():
            return candidate
    return None


def windows_name(iana: str) -> str | None:
    """The Windows key for an IANA zone the table lists (for dialects that speak Windows names)."""
    return _IANA_TO_WINDOWS.get(iana)


def guess_iana(zone: tzinfo, year: int) -> str | None:
    """An IANA zone (from the table, in its order) with the same UTC offsets as `zone` around `year`.

    Samples twice a month through the year, so DST rules must agree to within a fortnight; enough to
    name a custom VTIMEZONE, whose own definition still converts the instants exactly.
    """
    year = min(max(year, 1971), 9998)
    samples = [datetime(year, month, day, 12) for month in range(1, 13) for day in (1, 15)]

    def offsets(tz: tzinfo) -> list[timedelta | None]:
        return [sample.replace(tzinfo=tz).utcoffset() for sample in samples]

    wanted = offsets(zone)
    for iana in dict.fromkeys(WINDOWS_TO_IANA.values()):
        try:
            if offsets(ZoneInfo(iana)) == wanted:
                return iana
        except ZoneInfoNotFoundError:  # pragma: no cover - tzdata without this zone
            continue
    return None


def _transitions(zone: ZoneInfo, year: int) -> list[tuple[datetime, timedelta, timedelta, str, bool]]:
    """(UTC instant, offset before, offset after, name after, is DST after) for each change in `year`."""
    found = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    before = moment.astimezone(zone).utcoffset()
    while moment < end:
        step = moment + timedelta(days=1)
        after = step.astimezone(zone).utcoffset()
        if after != before:
            low, high = 0, 24 * 60  # minutes after `moment`: offset `before` at low, `after` at high
            while high - low > 1:
                middle = (low + high) // 2
                if (moment + timedelta(minutes=middle)).astimezone(zone).utcoffset() == before:
                    low = middle
                else:
                    high = middle
            instant = moment + timedelta(minutes=high)
            local = instant.astimezone(zone)
            assert before is not None and after is not None
            found.append((instant, before, after, local.tzname() or "", bool(local.dst())))
            before = after
        moment = step
    return found


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _yearly_rule(onset: datetime) -> tuple[int, int, int]:
    """(month, ordinal 1-4 or -1, weekday) describing the onset as 'nth weekday of the month'."""
    last_day = calendar.monthrange(onset.year, onset.month)[1]
    ordinal = -1 if onset.day + 7 > last_day else (onset.day - 1) // 7 + 1
    return onset.month, ordinal, onset.weekday()


def _rule_holds(zone: ZoneInfo, year: int, rules: list[tuple[int, int, int, datetime]]) -> bool:
    """True when the yearly rules reproduce the zone's real transitions for the next decade."""
    for later in range(year + 1, min(year + 11, 9999)):
        actual = sorted((instant + before).replace(tzinfo=None) for instant, before, *_ in
                        _transitions(zone, later))
        expected = sorted(
            rrule(YEARLY, dtstart=datetime(later, 1, 1, onset.hour, onset.minute), bymonth=month,
                  byweekday=weekday(day, ordinal), count=1)[0]
            for month, ordinal, day, onset in rules
        )
        if actual != expected:
            return False
    return True


@lru_cache(maxsize=512)
def vtimezone(name: str, year: int) -> str:
    """VTIMEZONE text (CRLF lines) for IANA `name`, valid from `year` on; raises ValueError if unknown."""
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    year = min(max(year, 1971), 9988)
    changes = _transitions(zone, year)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{name}"]
    if not changes:
        offset = datetime(year, 1, 1, tzinfo=zone).utcoffset() or timedelta()
        label = datetime(year, 1, 1, tzinfo=zone).tzname() or _offset(offset)
        lines += ["BEGIN:STANDARD", "DTSTART:19700101T000000", f"TZOFFSETFROM:{_offset(offset)}",
                  f"TZOFFSETTO:{_offset(offset)}", f"TZNAME:{label}", "END:STANDARD"]
    else:
        onsets = [(instant + before).replace(tzinfo=None) for instant, before, *_ in changes]
        rules = [(*_yearly_rule(onset), onset) for onset in onsets]
        if len(changes) != 2 or not _rule_holds(zone, year, rules):
            return _rdate_vtimezone(zone, name, year)
        for (_, before, after, label, dst), (month, ordinal, day, onset) in zip(changes, rules,
                                                                                    strict=True):
            kind = "DAYLIGHT" if dst else "STANDARD"
            code = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[day]
            # First onset a year early, so the whole of `year` is covered by an observance.
            first = rrule(YEARLY, dtstart=datetime(year - 1, 1, 1, onset.hour, onset.minute), bymonth=month,
                          byweekday=weekday(day, ordinal), count=1)[0]
            lines += [f"BEGIN:{kind}", f"DTSTART:{first:%Y%m%dT%H%M%S}",
                      f"RRULE:FREQ=YEARLY;BYMONTH={month};BYDAY={ordinal}{code}",
                      f"TZOFFSETFROM:{_offset(before)}", f"TZOFFSETTO:{_offset(after)}", f"TZNAME:{label}",
                      f"END:{kind}"]
    lines.append("END:VTIMEZONE")
    return "".join(line + "\r\n" for line in lines)


def _rdate_vtimezone(zone: ZoneInfo, name: str, year: int) -> str:
    """Irregular zones: icalendar's explicit-date VTIMEZONE over the next 30 years."""
    from icalendar import Timezone

    component = Timezone.from_tzinfo(zone, name, date(year, 1, 1), date(year + 30, 1, 1))
    return component.to_ical().decode()
