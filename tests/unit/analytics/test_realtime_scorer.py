"""The real-time scorer on its own: windows and their top point's explanation (an
alarm's the same as batch scoring gives), late points, the bounded queue, the state
saved on stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from stats_service.analytics import pipeline
from stats_service.analytics.detectors import make
from stats_service.analytics.realtime import RealtimeScorer
from stats_service.model import Batch
from stats_service.storage import anomaly_scores, models
from stats_service.storage.embedded import EmbeddedStore

S = 1_000_000
W = 60 * S
T0 = 1_772_366_400 * S  # 2026-03-01T12:00:00Z, a window start
SERIES = 42


def trained(store: EmbeddedStore, tmp_path: Path) -> models.ModelRecord:
    t = T0 - 600 * 10 * S + np.arange(600, dtype=np.int64) * 10 * S
    v = 20 + np.sin(np.arange(600) / 7)
    det = make("robust_z")
    det.score(t, v)
    path = tmp_path / "models" / "1" / str(SERIES) / "robust_z.json"
    pipeline.write_json_atomic(path, det.state())
    return models.upsert_model(
        store, 1, series_id=SERIES, detector="robust_z", params={"window_us": W, "detector": {}},
        train_from_us=int(t[0]), train_to_us=T0, path=str(path), metrics={},
    )  # fmt: skip


def batch(times: list[int], values: list[float]) -> Batch:
    return Batch(
        tenant_id=1,
        series_id=np.full(len(times), SERIES, dtype=np.int64),
        ts=np.asarray(times, dtype=np.int64),
        value=np.asarray(values, dtype=np.float64),
    )


def rows(store: EmbeddedStore) -> list[anomaly_scores.ScoreRow]:
    with store.reader() as cur:
        found, _ = anomaly_scores.list_scores(cur, 1, [SERIES], T0 - 10 * W, T0 + 10 * W)
    return found


def test_windows_and_explanations_match_batch_scoring(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "db.duckdb")
    model = trained(store, tmp_path)
    scorer = RealtimeScorer(store, cycle_s=0.05)
    scorer.start()
    try:
        assert scorer.active
        times = [T0 + 5 * S, T0 + 15 * S, T0 + 25 * S, T0 + W + 5 * S, T0 + W + 15 * S]
        values = [20.1, 48.0, 20.2, 19.9, 20.0]  # the first window's top is not its last point
        scorer.committed([batch(times[:2], values[:2])], {})
        scorer.committed([batch(times[2:], values[2:])], {})
        scorer.committed([batch([T0 - 5 * S], [500.0])], {})  # before the model's end: late
        assert scorer.wait_idle()
        found = rows(store)
        expected = pipeline.score_windows(
            "robust_z", {}, pipeline.load_state(model),
            np.asarray(times, dtype=np.int64), np.asarray(values), W,
        ).windows  # fmt: skip
        assert [(r.window_start_us, r.window_end_us) for r in found] == [
            (w.start_us, w.end_us) for w in expected
        ]
        for row, want in zip(found, expected, strict=True):
            assert row.score == want.score
            got = {k: v for k, v in row.explanation.items() if k != "realtime"}
            assert row.explanation["realtime"] is True
            if row.score >= 0.9:  # an alarm: explained at its top point, like batch scoring
                assert got == want.explanation
            else:  # below: the top point, the rule, and the point the details are of
                for key in ("rule", "point", "value", "points"):
                    assert got[key] == want.explanation[key]
                assert got.get("explained_at", got["point"]) <= pipeline.format_us(times[-1])
        assert found[0].score >= 0.9 and found[1].score < 0.9
        assert found[0].explanation["value"] == 48.0
        assert scorer.metrics.points._value.get() == 5  # the late point was not scored
        with store.reader() as cur:
            today = anomaly_scores.today()
            assert anomaly_scores.windows_scored(cur, 1, today, today) == {today: 2}
    finally:
        scorer.stop()
    saved = orjson.loads(
        (tmp_path / "models" / "1" / str(SERIES) / "robust_z.live.json").read_bytes()
    )
    assert saved["until_us"] == T0 + W + 15 * S + 1
    store.close()


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "db.duckdb")
    trained(store, tmp_path)
    scorer = RealtimeScorer(store, queue_points=5)
    scorer._refresh()  # the model list, without the worker
    scorer.committed([batch([T0 + i * S for i in range(4)], [20.0] * 4)], {})
    scorer.committed([batch([T0 + i * S for i in range(4, 8)], [20.0] * 4)], {})
    assert scorer.metrics.dropped._value.get() == 4
    other = Batch(1, np.asarray([7], dtype=np.int64), np.asarray([T0]), np.asarray([1.0]))
    other.tenant_id = 2  # a tenant without models is not queued at all
    scorer.committed([other], {})
    assert scorer.metrics.dropped._value.get() == 4
    store.close()
