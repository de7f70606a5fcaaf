"""A real Home Assistant core for scripts/homeassistant_real/check.py; runs in a venv that
has `homeassistant` installed (see check.py), not in the project's.

Sets up only homeassistant, http, recorder (SQLite), websocket_api and history, creates a
user with a long-lived access token, prints {"url", "token", "version"} as one JSON line,
then applies commands read from stdin, answering each with "ok":

    set <entity_id> <state> <attributes as JSON>
    remove <entity_id>
    flush                      (wait for the recorder to commit)

Usage: python ha_server.py <config dir> <port>
"""

import asyncio
import json
import logging
import sys
from datetime import timedelta

from homeassistant import config_entries, core, loader
from homeassistant.auth import auth_manager_from_config
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
from homeassistant.const import __version__
from homeassistant.helpers import (
    area_registry,
    device_registry,
    entity,
    entity_registry,
    floor_registry,
    issue_registry,
    label_registry,
    template,
    translation,
)
from homeassistant.setup import async_setup_component


async def main(config_dir: str, port: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    hass = core.HomeAssistant(config_dir)
    loader.async_setup(hass)
    hass.config.skip_pip = True
    hass.config.set_time_zone("UTC")
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    translation.async_setup(hass)
    entity.async_setup(hass)
    template.async_setup(hass)
    for reg in (
        area_registry,
        device_registry,
        entity_registry,
        floor_registry,
        issue_registry,
        label_registry,
    ):
        await reg.async_load(hass)
    await hass.config_entries.async_initialize()
    hass.auth = await auth_manager_from_config(hass, [{"type": "homeassistant"}], [])
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(
        hass, "http", {"http": {"server_host": "127.0.0.1", "server_port": port}}
    )
    from homeassistant.helpers import recorder as recorder_helper

    recorder_helper.async_initialize_recorder(hass)
    assert await async_setup_component(
        hass,
        "recorder",
        {"recorder": {"db_url": f"sqlite:///{config_dir}/ha.db", "commit_interval": 0}},
    )
    assert await async_setup_component(hass, "websocket_api", {})
    assert await async_setup_component(hass, "history", {})
    await hass.async_start()
    user = await hass.auth.async_create_user("stats", group_ids=["system-admin"])
    rt = await hass.auth.async_create_refresh_token(
        user,
        client_name="stats",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=1),
    )
    token = hass.auth.async_create_access_token(rt)
    print(
        json.dumps({"url": f"http://127.0.0.1:{port}", "token": token, "version": __version__}),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        parts = line.strip().split(" ", 3)
        if parts[0] == "set":
            hass.states.async_set(
                parts[1], parts[2], json.loads(parts[3]) if len(parts) > 3 else {}
            )
        elif parts[0] == "remove":
            hass.states.async_remove(parts[1])
        elif parts[0] == "flush":
            from homeassistant.components.recorder import get_instance

            await get_instance(hass).async_block_till_done()
        print("ok", flush=True)
    await hass.async_stop()


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
