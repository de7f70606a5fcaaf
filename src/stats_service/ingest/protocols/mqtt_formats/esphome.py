"""ESPHome's own MQTT topics: `<node>/<component>/<name>/state` and `<node>/status`.

`sensor` states are plain numbers (`21.5`; `nan` while unknown is reported as invalid);
`binary_sensor`, `switch` and `text_sensor` states (`ON`, `OFF`, any text) are kept as
text values. `<node>/status` (`online` / `offline`, ESPHome's birth and will messages)
becomes the text metric `status`. Units are not in these topics: enable the Home
Assistant discovery preset as well to learn them from ESPHome's discovery messages.
A node named `homeassistant` is left to the statestream preset, whose topics look alike.
"""

from __future__ import annotations

from .base import Message, Output, number_of

TEXT_COMPONENTS = ("binary_sensor", "switch", "text_sensor")


class Esphome:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.filters = tuple(
            prefix + f
            for f in ("+/sensor/+/state", *(f"+/{c}/+/state" for c in TEXT_COMPONENTS), "+/status")
        )

    def handle(self, msg: Message, out: Output) -> bool:
        if not msg.topic.startswith(self.prefix):
            return False
        levels = msg.topic[len(self.prefix) :].split("/")
        if len(levels) == 2 and levels[1] == "status":
            out.text(levels[0], "status", msg.text().lower())
            return True
        if len(levels) != 4 or levels[3] != "state" or levels[0] == "homeassistant":
            return False  # `homeassistant/<domain>/<id>/state` is Home Assistant's statestream
        node, component, name = levels[0], levels[1], levels[2]
        if component == "sensor":
            number = number_of(msg.text())
            if number is None:
                out.problem(f"sensor state {msg.text()[:40]!r} is not a number")
            else:
                out.number(node, name, number)
            return True
        if component in TEXT_COMPONENTS:
            out.text(node, name, msg.text())
            return True
        return False
