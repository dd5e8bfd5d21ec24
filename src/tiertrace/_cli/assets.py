"""The observability assets shipped with tiertrace, and how to copy them out.

tiertrace ships a ready-to-run stack: an OpenTelemetry Collector config, Prometheus with
recording rules and alerts (plus their promtool unit tests), provisioned Grafana dashboards
and a docker-compose file that starts Redis, PostgreSQL, Chroma, the collector, Prometheus,
Grafana, Jaeger and a demo workload. :data:`ASSET_FILES` lists them, relative to the
directory they are copied into.

Copy them anywhere and start the stack::

    from pathlib import Path
    from tiertrace._cli.assets import write_assets

    for path in write_assets(Path("tiertrace-stack")):
        print(path)

    # then, in tiertrace-stack/:
    #   GRAFANA_ADMIN_PASSWORD='choose-one' docker compose up -d
    #   open http://127.0.0.1:3000 (dashboards "Memory tiers" and "Tier operations")

Point your own application at the collector with
``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`` and ``tiertrace.init(exporter="otlp")``.

The files are package data of ``tiertrace`` (``tiertrace/assets/``), read with
`importlib.resources`, so this works the same from a wheel, an editable install or a source
tree. Existing files in the target directory are overwritten.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover
    from importlib.abc import Traversable

ASSET_FILES: tuple[str, ...] = (
    "docker-compose.yml",
    "otel-collector.yaml",
    "prometheus/prometheus.yml",
    "prometheus/rules/tiertrace.rules.yml",
    "prometheus/tests/tiertrace.test.yml",
    "grafana/provisioning/datasources/tiertrace.yaml",
    "grafana/provisioning/dashboards/tiertrace.yaml",
    "grafana/dashboards/memory-tiers.json",
    "grafana/dashboards/tier-operations.json",
)


def asset_root() -> Traversable:
    """The shipped stack: the ``assets`` directory of the installed ``tiertrace`` package."""
    return files("tiertrace").joinpath("assets")


def write_assets(out: Path) -> list[Path]:
    """Copy every file of :data:`ASSET_FILES` into ``out``, keeping relative paths.

    Returns the written paths in the order of :data:`ASSET_FILES`. Raises
    ``FileNotFoundError`` naming the file when an asset is missing from this installation.
    """
    root = asset_root()
    written = []
    for relative in ASSET_FILES:
        source = root.joinpath(*relative.split("/"))
        if not source.is_file():
            raise FileNotFoundError(f"tiertrace asset {relative} not found under {root}")
        target = Path(out) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        written.append(target)
    return written
