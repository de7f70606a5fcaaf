"""Tasmota: `tele/<topic>/SENSOR`, `tele/<topic>/STATE`, `tele/<topic>/LWT`, `stat/<topic>/POWER`.

SENSOR holds nested JSON; every numeric leaf becomes a metric named by its path
(`ENERGY.Power`, `AM2301.Temperature`), with the unit Tasmota uses for that key
(temperatures in `TempUnit`, pressures in `PressureUnit`). STATE gives the numeric
health values (`UptimeSec`, `Wifi.RSSI`, ...) and the relay states (`POWER`, `POWER1`..)
as text. LWT `Online`/`Offline` becomes the text metric `status` (lower case).

Tasmota's `Time` carries no UTC offset, so points are stamped with the receive time
unless a time zone is configured for the preset or the device: then `Time` is read as
local time of that zone.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ...timestamps import MAX_US, MIN_US
from .base import Message, Output, leaves, number_of

UNITS: dict[str, str] = {
    "Humidity": "%",
    "Power": "W",
    "ApparentPower": "VA",
    "ReactivePower": "var",
    "Voltage": "V",
    "Current": "A",
    "Total": "kWh",
    "Today": "kWh",
    "Yesterday": "kWh",
    "Frequency": "Hz",
    "Illuminance": "lx",
    "CO2": "ppm",
    "eCO2": "ppm",
    "TVOC": "ppb",
    "Distance": "cm",
    "UptimeSec": "s",
    "Heap": "kB",
    "RSSI": "%",
    "Signal": "dBm",
    "PM2.5": "µg/m³",
    "PM10": "µg/m³",
    "PM1": "µg/m³",
}
TEMPERATURE_KEYS = frozenset({"Temperature", "DewPoint", "Temperature1", "Temperature2"})
PRESSURE_KEYS = frozenset({"Pressure", "SeaPressure"})
SKIPPED_KEYS = frozenset({"Time", "TempUnit", "PressureUnit", "SpeedUnit", "TotalStartTime"})
POWER_RE = re.compile(r"^POWER\d*$")
_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))


class Tasmota:
    def __init__(
        self, prefix: str = "", timezone: str | None = None, device_timezones: Any = None
    ) -> None:
        self.prefix = prefix
        self.timezone = ZoneInfo(timezone) if timezone else None
        self.device_timezones = {
            device: ZoneInfo(zone) for device, zone in dict(device_timezones or {}).items()
        }
        self.filters = tuple(
            prefix + f for f in ("tele/+/SENSOR", "tele/+/STATE", "tele/+/LWT", "stat/+/POWER")
        )

    def handle(self, msg: Message, out: Output) -> bool:
        if not msg.topic.startswith(self.prefix):
            return False
        levels = msg.topic[len(self.prefix) :].split("/")
        if len(levels) != 3:
            return False
        kind, device, name = levels
        if kind == "stat":
            if not POWER_RE.fullmatch(name):
                return False
            out.text(device, name, msg.text())
            return True
        if kind != "tele" or name not in ("SENSOR", "STATE", "LWT"):
            return False
        if name == "LWT":
            out.text(device, "status", msg.text().lower())
            return True
        try:
            doc = msg.json()
        except ValueError:
            out.problem("payload is not JSON")
            return True
        if not isinstance(doc, dict):
            out.problem("payload is not a JSON object")
            return True
        ts = self._time(device, doc.get("Time"), out)
        temp_unit = "°" + str(doc.get("TempUnit", "C"))
        pressure_unit = str(doc.get("PressureUnit", "hPa"))
        for path, value in leaves({k: v for k, v in doc.items() if k not in SKIPPED_KEYS}):
            key = path.rsplit(".", 1)[-1]
            if name == "STATE" and POWER_RE.fullmatch(path) and isinstance(value, str):
                out.text(device, path, value, ts=ts)
                continue
            if isinstance(value, bool | str):
                continue  # text leaves (versions, SSIDs, modes) are not measurements
            number = number_of(value)
            if number is None:
                continue
            if key.isdigit():  # a list item: the unit is its parent's
                key = path.rsplit(".", 2)[-2] if path.count(".") else key
            if key in TEMPERATURE_KEYS:
                unit: str | None = temp_unit
            elif key in PRESSURE_KEYS:
                unit = pressure_unit
            else:
                unit = UNITS.get(key)
            out.number(device, path, number, ts=ts, unit=unit)
        return True

    def _time(self, device: str, raw: Any, out: Output) -> int | None:
        """The message time: `Time` in the configured zone, else None (receive time)."""
        zone = self.device_timezones.get(device, self.timezone)
        if zone is None or raw is None:
            return None
        try:
            local = datetime.fromisoformat(str(raw))
        except ValueError:
            out.problem(f"Time {str(raw)[:40]!r} is not an ISO date and time; used receive time")
            return None
        if local.tzinfo is None:
            local = local.replace(tzinfo=zone)
        delta = local - _EPOCH
        us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return us if MIN_US <= us <= MAX_US else None
