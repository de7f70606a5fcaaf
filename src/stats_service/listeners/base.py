"""What the app needs of a listener: start it in the event loop, stop it cleanly."""

from __future__ import annotations

from typing import Protocol


class Listener(Protocol):
    name: str

    async def start(self) -> None:
        """Begin listening; returns once the listener runs (in background tasks)."""

    async def stop(self) -> None:
        """Stop: flush what was received into the pipeline, then close the transport."""
