"""Response models of the pattern analysis API (routers/patterns.py, docs/patterns.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Time = str


class AnalysedSeries(BaseModel):
    series_id: str = Field(description="Series id, a signed 64-bit integer as a decimal string.")
    metric: str
    device: str | None
    tags: dict[str, str]
    unit: str | None


class Gaps(BaseModel):
    interpolated: int = Field(description="Empty buckets inside the range, interpolated.")
    trimmed_start: int = Field(description="Empty buckets at the start, left out.")
    trimmed_end: int = Field(description="Empty buckets at the end, left out.")
    note: str


class Duration(BaseModel):
    buckets: float = Field(description="In buckets (a period may fall between two).")
    seconds: float
    duration: str = Field(description="Compact, in whole buckets: `1h`, `1h30m`, `-4m`.")


class AnalysisOut(BaseModel):
    """What every analysis answers first: the series, the range and the bucket grid."""

    model_config = ConfigDict(populate_by_name=True)

    analysis: str = Field(examples=["spectrum"])
    series: list[AnalysedSeries]
    from_: Time = Field(alias="from", description="Start of the first bucket analysed.")
    to: Time = Field(description="End of the last bucket analysed.")
    bucket: str = Field(examples=["1m"])
    buckets: int = Field(description="Buckets analysed (after trimming empty ends).")
    gaps: Gaps


class ChangePoint(BaseModel):
    index: int = Field(description="Bucket index where the new segment starts.")
    time: Time
    before_mean: float
    after_mean: float
    shift: float = Field(description="after_mean - before_mean.")


class Segment(BaseModel):
    start: Time
    end: Time = Field(description="Start of the segment's last bucket.")
    buckets: int
    mean: float
    std: float


class ChangePointsOut(AnalysisOut):
    model: str = Field(description="Cost model: l2 (level) or rbf (distribution).")
    penalty: float | None = Field(description="Pelt penalty used; null with n_bkps.")
    n_bkps: int | None
    noise_sigma: float = Field(description="Robust noise level of the series.")
    change_points: list[ChangePoint]
    segments: list[Segment]


class Period(Duration):
    detected: bool = Field(description="True when found by the spectrum, not given.")


class Strength(BaseModel):
    trend: float = Field(ge=0, le=1)
    seasonal: float = Field(ge=0, le=1)


class DecomposeOut(AnalysisOut):
    period: Period
    strength: Strength
    t: list[Time]
    observed: list[float | None]
    trend: list[float | None]
    seasonal: list[float | None]
    resid: list[float | None]


class SpectralPeak(Duration):
    power_share: float = Field(description="Share of the total power (0..1).")


class SpectrumOut(AnalysisOut):
    periods: list[SpectralPeak] = Field(description="Strongest first.")
    dominant: SpectralPeak | None


class Place(BaseModel):
    index: int = Field(description="Bucket index where the window starts.")
    time: Time


class Motif(BaseModel):
    distance: float = Field(description="z-normalised Euclidean distance of the two windows.")
    a: Place
    b: Place


class Discord(Place):
    distance: float = Field(description="Distance to its nearest window (largest: oddest).")
    nearest: Place


class Window(Duration):
    derived: bool


class MotifsOut(AnalysisOut):
    window: Window
    motifs: list[Motif]
    discords: list[Discord]


class PairCorrelation(BaseModel):
    a: str
    b: str
    pearson: float | None = Field(description="At lag 0.")
    best_lag: Duration = Field(description="Positive: b follows a (a leads).")
    best_pearson: float | None
    best_spearman: float | None
    leader: str | None = Field(description="`a`, `b` or null (lag 0).")


class CorrelationOut(AnalysisOut):
    max_lag: Duration
    matrix: list[list[float | None]] = Field(description="Pearson at lag 0, series order.")
    pairs: list[PairCorrelation]


class GrangerLag(Duration):
    lag: int
    f: float
    p_value: float
    df: list[int]


class BestLag(Duration):
    p_value: float


class GrangerOut(AnalysisOut):
    cause: str
    effect: str
    max_lag: Duration
    alpha: float
    differenced: bool = Field(description="Both series were differenced once (unit root).")
    lags: list[GrangerLag]
    best_lag: BestLag
    granger_causes: bool
    verdict: str
