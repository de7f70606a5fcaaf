"""Anomaly detectors of the catalogue on the NAB DEV files (benchmarks/nab_dev, 24 files).

    .venv/bin/python benchmarks/nab.py                       # every detector
    .venv/bin/python benchmarks/nab.py --detectors ensemble robust_z
    .venv/bin/python benchmarks/nab.py --nab benchmarks/nab_dev --per-file

Each detector reads each file as a stream (one fresh detector per file, one score per
row in file order, repeated rows included). The scores of all files are scored with
NAB's rules (stats_service.analytics.nab, as benchmarks/nab_dev/README.md describes): one
threshold for all files per profile, chosen to maximise the score. The table shows the
three profiles, windows hit and FP rows (standard profile) and the seconds spent
scoring, beside NAB's published detectors rescored on the same 24 files. The last line
times the default detector on a year of 5-minute data (105,120 points; target < 2 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from stats_service.analytics import nab  # noqa: E402
from stats_service.analytics.detectors import CATALOGUE, DEFAULT, make  # noqa: E402

PUBLISHED = [  # standard profile on the same 24 files (benchmarks/nab_dev/README.md)
    ("ARTime", 68.77),
    ("Numenta HTM", 64.85),
    ("HTM Java", 63.58),
    ("KNN CAD", 53.51),
    ("Relative Entropy", 45.27),
    ("Twitter ADVec", 39.23),
    ("Windowed Gaussian", 28.16),
]


def run_detector(
    name: str, files: list[nab.NabFile]
) -> tuple[dict[str, nab.Result], float, list[tuple[str, np.ndarray, list[tuple[int, int]]]]]:
    scored = []
    t0 = time.perf_counter()
    for f in files:
        s = make(name).score(f.times_us, f.values)
        if s.shape != f.values.shape:
            raise RuntimeError(f"{name} gave {s.size} scores for {f.values.size} rows")
        scored.append((f.name, s, f.windows))
    secs = time.perf_counter() - t0
    return nab.evaluate(scored), secs, scored


def year_cost(name: str) -> float:
    rng = np.random.default_rng(0)
    n = 105_120
    t = np.arange(n, dtype=np.int64) * 300_000_000 + 1_700_000_000_000_000
    day = np.sin(2 * np.pi * np.arange(n) / 288)
    v = 50 + 10 * day + rng.normal(0, 1, n)
    v[60_000:60_050] += 15
    det = make(name)
    t0 = time.perf_counter()
    det.score(t, v)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nab", default=str(ROOT / "benchmarks" / "nab_dev"))
    ap.add_argument("--detectors", nargs="*", default=list(CATALOGUE))
    ap.add_argument("--per-file", action="store_true", help="raw standard score per file")
    args = ap.parse_args()

    files = nab.load(args.nab)
    n_win = sum(len(f.windows) for f in files)
    print(f"NAB DEV: {len(files)} files, {sum(f.values.size for f in files)} rows, {n_win} windows")
    print()
    print("| detector | standard | low FP | low FN | windows hit | FP rows | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.detectors:
        res, secs, _scored = run_detector(name, files)
        std = res["standard"]
        print(
            f"| **{name}**{' (default)' if name == DEFAULT else ''} | {std.score:.2f} | "
            f"{res['reward_low_FP_rate'].score:.2f} | {res['reward_low_FN_rate'].score:.2f} | "
            f"{std.windows_hit}/{std.windows} | {std.fp_rows} | {secs:.1f} |",
            flush=True,
        )
        if args.per_file:
            for fname, raw in std.per_file.items():
                print(f"|   {fname} | {raw:+.3f} (T={std.threshold:.4f}) | | | | | |")
    for pname, sc in PUBLISHED:
        print(f"| {pname} (published) | {sc:.2f} | | | | | |")
    print()
    secs = year_cost(DEFAULT)
    verdict = "met" if secs < 2.0 else "missed"
    print(
        f"cost: default detector ({DEFAULT}) on a year of 5-minute data (105,120 points): "
        f"{secs:.2f} s (target < 2 s: {verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
