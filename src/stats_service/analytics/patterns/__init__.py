"""Pattern analysis of bucketed series (docs/patterns.md): change points, seasonal
decomposition, dominant periods, motifs and discords, lagged correlation and Granger
causality. One module per analysis; each takes evenly spaced values (a `Grid` from
`data.py`, gaps interpolated) and returns a JSON-ready dict."""
