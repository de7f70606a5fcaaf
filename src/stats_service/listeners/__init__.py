"""Long-running sources (StatsD, MQTT, Home Assistant): started and stopped with the app.

Each listener owns only its transport: what it receives goes through the ingest pipeline
as bytes of its protocol, parsed by that protocol's module in `ingest/protocols/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Listener

if TYPE_CHECKING:
    from ..services import Services


def build_listeners(services: Services) -> list[Listener]:
    """The listeners the settings ask for (none by default)."""
    settings = services.settings
    found: list[Listener] = []
    if settings.statsd_enabled:
        from .statsd import StatsdListener

        found.append(StatsdListener(services))
    if settings.mqtt_config is not None or settings.mqtt_url is not None:
        from .mqtt import MqttListener

        found.append(MqttListener(services))
    if settings.homeassistant_url is not None:
        from .homeassistant import HomeAssistantListener

        found.append(HomeAssistantListener(services))
    return found


__all__ = ["Listener", "build_listeners"]
