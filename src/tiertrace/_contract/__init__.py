"""The telemetry contract of DESIGN §4 and §5: one source for runtime, report, rules, dashboards.

* `names` — instrumentation scope, bucket bounds, attribute names and one spec per instrument
  (OpenTelemetry name, kind, unit, description, Prometheus name, attribute keys);
* `promql` — the PromQL builders (with their zero guards) and the recording-rule names;
* `targets` — the three service targets (cache effectiveness, mean lookup latency, L1 hit rate).

Imports nothing else of tiertrace. The generators of the shipped Grafana dashboards and
Prometheus rules are build-time code in the repository's ``tools/`` directory.
"""
