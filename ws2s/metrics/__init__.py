"""Metrics: classification accuracy and calibration (`ws2s.metrics.classification`) and
SLURP's SLU-F1 (`ws2s.metrics.slu_f1`); PGR is in `ws2s.objectives`. Kept empty: a package's
__init__ runs with every module of it, so anything here would be part of both tracks'
code versions."""
