"""Tier choice (pure: marks in, plan out) and rollup policy parsing."""

from __future__ import annotations

import numpy as np
import pytest

from stats_service.errors import ValidationFailed
from stats_service.query.buckets import Buckets
from stats_service.query.params import TimeRange
from stats_service.query.tiers import _boundaries, _choose
from stats_service.storage.rollup_policy import (
    Tier,
    format_duration,
    parse_tenant_policy,
    parse_text,
)
from stats_service.storage.rollups import Mark

M, H, D = 60_000_000, 3_600_000_000, 86_400_000_000
T0 = 19_875 * D  # 2024-06-01
NEVER = -(2**62)


def marks(done: int, deleted_1m: int | None = None) -> list[Mark]:
    """1h and 1m tiers (coarsest first), both rolled up to `done`."""
    return [Mark(H, None, done, None), Mark(M, None, done, deleted_1m)]


def choose(
    bucket_us: int, lo: int, hi: int, raw_floor: int, tiers: list[Mark], tz: str = "UTC"
) -> tuple[int, int, int] | None:
    span = TimeRange(lo, hi)
    return _choose(tiers, raw_floor, span, _boundaries(Buckets(bucket_us, tz), span))


def test_coarsest_aligned_tier_wins() -> None:
    assert choose(H, T0, T0 + D, NEVER, marks(T0 + D)) == (H, T0, T0 + D)
    assert choose(D, T0, T0 + 2 * D, NEVER, marks(T0 + 2 * D)) == (H, T0, T0 + 2 * D)
    assert choose(30 * M, T0, T0 + D, NEVER, marks(T0 + D)) == (M, T0, T0 + D)


def test_recent_buckets_come_from_raw() -> None:
    assert choose(H, T0, T0 + D, NEVER, marks(T0 + 5 * H)) == (H, T0, T0 + 5 * H)


def test_uneven_edges_are_raw_while_raw_exists() -> None:
    lo, hi = T0 + 17_000_000, T0 + 5 * H + 3 * M
    assert choose(H, lo, hi, NEVER, marks(T0 + D)) == (H, T0 + H, T0 + 5 * H)


def test_widened_to_the_finest_tier_when_raw_is_gone_at_the_edge() -> None:
    lo = T0 + 90 * M + 5_000_000
    assert choose(H, lo, T0 + D, T0 + 12 * H, marks(T0 + D)) == (M, T0 + 90 * M, T0 + D)


def test_a_day_in_a_half_hour_zone_needs_the_minute_tier() -> None:
    got = choose(D, T0 - 2 * D, T0 + 3 * D, NEVER, marks(T0 + 4 * D), tz="Asia/Kolkata")
    assert got is not None and got[0] == M
    got = choose(D, T0 - 2 * D, T0 + 3 * D, NEVER, marks(T0 + 4 * D), tz="Europe/Berlin")
    assert got is not None and got[0] == H


def test_nothing_covers_a_range_whose_tier_and_raw_are_gone() -> None:
    assert choose(M, T0, T0 + D, T0 + 20 * H, marks(T0 + D, deleted_1m=T0 + 10 * H)) is None


def test_only_raw_when_no_tier_fits() -> None:
    assert choose(7 * M // 2, T0, T0 + H, NEVER, marks(T0 + D)) == (0, T0 + H, T0 + H)
    assert choose(90 * 1_000_000, T0, T0 + H, NEVER, marks(T0 + D)) == (0, T0 + H, T0 + H)


def test_boundaries_of_fixed_buckets_are_the_width() -> None:
    assert _boundaries(Buckets(H), TimeRange(T0, T0 + D)).tolist() == [H]
    starts = _boundaries(Buckets(D, "America/New_York"), TimeRange(T0, T0 + 3 * D))
    assert np.all(starts % H == 0) and starts.size == 3


def test_text_policy_round_trips() -> None:
    policy = parse_text("raw 7d -> 1m for 90d -> 1h forever")
    assert policy.tiers == (Tier(0, 7 * D), Tier(M, 90 * D), Tier(H, None))
    assert policy.text() == "raw 7d -> 1m 90d -> 1h forever"
    assert format_duration(7 * D) == "7d" and format_duration(90_000_000) == "90s"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1m 7d", "first tier is `raw`"),
        ("raw 7d -> 1h 1d -> 1m 1d", "coarser than and a whole multiple of 1h"),
        ("raw 7d -> 1m", "`<resolution> <keep>`"),
        ("raw 7d -> 0m 1d", "not a duration"),
        ("raw 7d -> raw 8d", "only the first tier is `raw`"),
        ("raw 7d", "needs at least one rollup tier"),
        ("raw 7d -> 400d forever", "at most 366d"),
        ("raw 7d -> 1d 99999999d", "at most 36600d"),
    ],
)
def test_bad_text_policies_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_text(text)
    assert any(words in e.msg for e in caught.value.errors), caught.value.errors


def test_overrides_first_match_wins_and_tags_match_exactly() -> None:
    policy = parse_tenant_policy(
        {
            "tiers": [{"resolution": "raw", "keep": "1d"}, {"resolution": "1m"}],
            "overrides": [
                {"metric": "cpu_*", "tags": {"rack": "87"}, "tiers": [{"resolution": "raw"}]},
                {"metric": "cpu_*", "tiers": [{"resolution": "raw"}, {"resolution": "1h"}]},
            ],
        }
    )
    assert policy.for_series("cpu_user", {"rack": "87"}).rollups == ()
    assert policy.for_series("cpu_user", {"rack": "8"}).rollups == (Tier(H, None),)
    assert policy.for_series("mem", {"rack": "87"}).rollups == (Tier(M, None),)
    assert parse_tenant_policy(policy.to_json()) == policy
