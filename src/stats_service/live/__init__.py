"""The live feed: points pushed to WebSocket subscribers as they are committed."""
