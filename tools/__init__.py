"""Build-time tools of the repository: the generators of the shipped Grafana and Prometheus assets.

Not part of the installed package; run from the repository root (``python -m tools.generate``).
"""
