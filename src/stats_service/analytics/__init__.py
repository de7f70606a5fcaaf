"""Analytics: window features, anomaly detectors and scoring, forecasting, pattern
analysis (docs/analytics.md). Numerics come from numpy, scipy, statsmodels,
scikit-learn, ruptures, stumpy and river."""
