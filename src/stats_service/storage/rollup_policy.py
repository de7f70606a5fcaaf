"""Rollup policies: which tiers a series is kept in, and for how long.

A policy is an ordered list of tiers. The first is always `raw` (the points as written);
each later tier has a resolution that is a whole multiple of the one before, e.g.
`raw 7d -> 1m 90d -> 1h forever`. A tenant has one default policy and any number of
overrides, each a selector (a metric glob and/or exact tags) with its own policy; the
first override that matches a series wins. Without a stored policy the tenant follows
the default from settings. Pure functions (no I/O); the errors name the field at fault.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import FieldError, ValidationFailed

SECOND_US = 1_000_000
_UNITS = {
    "s": SECOND_US,
    "m": 60 * SECOND_US,
    "h": 3600 * SECOND_US,
    "d": 86_400 * SECOND_US,
    "w": 7 * 86_400 * SECOND_US,
}
_DURATION = re.compile(r"(\d{1,9})([smhdw])")
MAX_TIERS = 6
MAX_OVERRIDES = 100
MAX_RESOLUTION_US = 366 * 86_400 * SECOND_US
MAX_KEEP_US = 36_600 * 86_400 * SECOND_US  # a hundred years
FOREVER = "forever"


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier: `resolution_us` 0 is raw; `keep_us` None keeps it forever."""

    resolution_us: int
    keep_us: int | None

    @property
    def label(self) -> str:
        return "raw" if self.resolution_us == 0 else format_duration(self.resolution_us)

    def to_json(self) -> dict[str, str]:
        keep = FOREVER if self.keep_us is None else format_duration(self.keep_us)
        return {"resolution": self.label, "keep": keep}


@dataclass(frozen=True, slots=True)
class Policy:
    """Raw first, then the rollup tiers from finest to coarsest."""

    tiers: tuple[Tier, ...]

    @property
    def raw(self) -> Tier:
        return self.tiers[0]

    @property
    def rollups(self) -> tuple[Tier, ...]:
        return self.tiers[1:]

    def to_json(self) -> list[dict[str, str]]:
        return [t.to_json() for t in self.tiers]

    def text(self) -> str:
        return " -> ".join(
            f"{t.label} {'forever' if t.keep_us is None else format_duration(t.keep_us)}"
            for t in self.tiers
        )


@dataclass(frozen=True, slots=True)
class Override:
    """A selector (metric glob, exact tags) and the policy of the series it matches."""

    policy: Policy
    metric: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def matches(self, metric: str, tags: Mapping[str, str]) -> bool:
        if self.metric is not None and not fnmatch.fnmatchcase(metric, self.metric):
            return False
        return all(tags.get(k) == v for k, v in self.tags.items())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.metric is not None:
            out["metric"] = self.metric
        if self.tags:
            out["tags"] = dict(self.tags)
        out["tiers"] = self.policy.to_json()
        return out


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    default: Policy
    overrides: tuple[Override, ...] = ()

    def for_series(self, metric: str, tags: Mapping[str, str]) -> Policy:
        for override in self.overrides:
            if override.matches(metric, tags):
                return override.policy
        return self.default

    def to_json(self) -> dict[str, Any]:
        return {
            "tiers": self.default.to_json(),
            "overrides": [o.to_json() for o in self.overrides],
        }


def format_duration(us: int) -> str:
    """The largest unit that divides `us` exactly: 60_000_000 -> `1m`."""
    for unit in ("d", "h", "m", "s"):
        if us % _UNITS[unit] == 0:
            return f"{us // _UNITS[unit]}{unit}"
    return f"{us}us"


def parse_duration(text: str, loc: str, errors: list[FieldError]) -> int | None:
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or int(match[1]) == 0:
        errors.append(FieldError(loc, f"{text!r} is not a duration; use e.g. 10s, 1m, 1h, 7d, 1w"))
        return None
    return int(match[1]) * _UNITS[match[2]]


def parse_text(text: str, loc: str = "rollup_policy") -> Policy:
    """`raw 7d -> 1m for 90d -> 1h forever` (the form used in settings)."""
    tiers: list[dict[str, str]] = []
    for part in text.split("->"):
        words = [w for w in part.split() if w.lower() != "for"]
        if len(words) != 2:
            raise ValidationFailed(
                [
                    FieldError(
                        loc,
                        f"{part.strip()!r}: write each tier as `<resolution> <keep>`, "
                        "e.g. `raw 7d -> 1m 90d -> 1h forever`",
                    )
                ]
            )
        tiers.append({"resolution": words[0], "keep": words[1]})
    return parse_tiers(tiers, loc)


def parse_tiers(items: Any, loc: str) -> Policy:
    """A policy from its JSON form; every error found is reported at once."""
    errors: list[FieldError] = []
    if not isinstance(items, list) or not items:
        raise ValidationFailed([FieldError(loc, "a non-empty list of {resolution, keep}")])
    if len(items) > MAX_TIERS:
        errors.append(FieldError(loc, f"at most {MAX_TIERS} tiers (raw included)"))
    tiers: list[Tier] = []
    for i, item in enumerate(items):
        here = f"{loc}[{i}]"
        if not isinstance(item, dict) or set(item) - {"resolution", "keep"}:
            errors.append(FieldError(here, "an object with `resolution` and `keep` only"))
            continue
        res_text, keep_text = item.get("resolution"), item.get("keep", FOREVER)
        if not isinstance(res_text, str) or not isinstance(keep_text, str):
            errors.append(FieldError(here, "`resolution` and `keep` are strings"))
            continue
        if i == 0:
            res: int | None = 0
            if res_text.strip().lower() != "raw":
                errors.append(FieldError(f"{here}.resolution", "the first tier is `raw`"))
        elif res_text.strip().lower() == "raw":
            res = None
            errors.append(FieldError(f"{here}.resolution", "only the first tier is `raw`"))
        else:
            res = parse_duration(res_text, f"{here}.resolution", errors)
        keep = (
            None
            if keep_text.strip().lower() == FOREVER
            else parse_duration(keep_text, f"{here}.keep", errors)
        )
        if res is None or (keep is None and keep_text.strip().lower() != FOREVER):
            continue
        if tiers and res is not None:
            before = tiers[-1].resolution_us
            if res <= before or (before and res % before):
                errors.append(
                    FieldError(
                        f"{here}.resolution",
                        f"{res_text} must be coarser than and a whole multiple of "
                        f"{tiers[-1].label}",
                    )
                )
                continue
        if res is not None and res > MAX_RESOLUTION_US:
            errors.append(FieldError(f"{here}.resolution", "at most 366d"))
            continue
        if keep is not None and keep > MAX_KEEP_US:
            errors.append(FieldError(f"{here}.keep", "at most 36600d; or `forever`"))
            continue
        if keep is not None and res and keep < res:
            errors.append(
                FieldError(f"{here}.keep", f"keep {keep_text} is shorter than {res_text}")
            )
            continue
        tiers.append(Tier(res, keep))
    if not errors and len(tiers) == 1 and tiers[0].keep_us is not None:
        errors.append(
            FieldError(
                f"{loc}[0].keep",
                "a raw keep needs at least one rollup tier to keep the data in; without "
                "tiers write `raw forever` (the tenant retention still deletes raw points)",
            )
        )
    if errors:
        raise ValidationFailed(errors)
    return Policy(tuple(tiers))


def parse_tenant_policy(body: Any) -> TenantPolicy:
    """{"tiers": [...], "overrides": [{"metric": "cpu_*", "tags": {...}, "tiers": [...]}]}."""
    if not isinstance(body, dict) or set(body) - {"tiers", "overrides"}:
        raise ValidationFailed([FieldError("body", "an object with `tiers` and `overrides`")])
    errors: list[FieldError] = []
    default = _collect(body.get("tiers"), "body.tiers", errors)
    overrides: list[Override] = []
    raw_overrides = body.get("overrides", [])
    if not isinstance(raw_overrides, list) or len(raw_overrides) > MAX_OVERRIDES:
        errors.append(FieldError("body.overrides", f"a list of at most {MAX_OVERRIDES} selectors"))
        raw_overrides = []
    for i, item in enumerate(raw_overrides):
        here = f"body.overrides[{i}]"
        if not isinstance(item, dict) or set(item) - {"metric", "tags", "tiers"}:
            errors.append(FieldError(here, "an object with `metric`, `tags` and `tiers`"))
            continue
        metric, tags = item.get("metric"), item.get("tags", {})
        if metric is not None and (not isinstance(metric, str) or not metric or len(metric) > 200):
            errors.append(FieldError(f"{here}.metric", "a glob of 1 to 200 characters, e.g. cpu_*"))
            continue
        if not isinstance(tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            errors.append(FieldError(f"{here}.tags", "an object of tag name -> exact value"))
            continue
        if metric is None and not tags:
            errors.append(FieldError(here, "give `metric` or `tags` (or both) to select series"))
            continue
        policy = _collect(item.get("tiers"), f"{here}.tiers", errors)
        if policy is not None:
            overrides.append(Override(policy, metric, dict(tags)))
    if errors or default is None:
        raise ValidationFailed(errors)
    return TenantPolicy(default, tuple(overrides))


def _collect(items: Any, loc: str, errors: list[FieldError]) -> Policy | None:
    try:
        policy = parse_tiers(items, loc)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
        return None
    return policy
