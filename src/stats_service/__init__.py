"""StatisticsService: self-hosted telemetry and time-series statistics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stats-service")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
