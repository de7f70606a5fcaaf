"""The crash test: SIGKILL the server while clients ingest; nothing acknowledged is lost.

Clients post batches of 50 unique points, each with its own Idempotency-Key, and retry
a batch with the same key (across restarts) until it is acknowledged. The server is
killed with SIGKILL at random moments and started again on the same data dir. In the
end every acknowledged point is stored exactly once with the value that was sent.
"""

from __future__ import annotations

import random
import time

import pytest

from .conftest import ServerFactory
from .harness import Feeder, assert_exactly_once, stored_points

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KILLS = 6
SEED = int(time.time())


def test_sigkill_while_ingesting_loses_and_doubles_nothing(server_factory: ServerFactory) -> None:
    rng = random.Random(SEED)
    print(f"random seed {SEED}")
    server = server_factory().start()
    feeders = [Feeder(server, f"crash-{i}", batch_points=50) for i in range(3)]
    for feeder in feeders:
        feeder.start()

    for _ in range(KILLS):
        acked_before = sum(f.acked_batches for f in feeders)
        deadline = time.monotonic() + 30
        while sum(f.acked_batches for f in feeders) < acked_before + 5:  # writes under way
            assert time.monotonic() < deadline, "no batch acknowledged after a restart"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        server.kill()
        assert server.server_file.exists()  # SIGKILL leaves the stale file behind
        server.start()  # ... which the next start replaces

    for feeder in feeders:
        feeder.stop()  # the batch in flight is acknowledged before the feeder stops
        assert not feeder.unexpected, feeder.unexpected[:3]
    server.terminate()

    acked = {k: v for f in feeders for k, v in f.acked.items()}
    stored = stored_points(server.data_dir, "crash-")
    assert_exactly_once(stored, acked)
    assert len(stored) == len(acked) == 50 * sum(f.acked_batches for f in feeders)
    retried = sum(f.failures for f in feeders)
    print(
        f"{len(acked)} points in {len(acked) // 50} batches, {retried} retries, "
        f"{sum(f.replayed for f in feeders)} idempotent replays"
    )
    assert retried > 0, "no request was ever interrupted by a kill"
