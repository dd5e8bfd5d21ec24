"""Generate the shipped dashboards and Prometheus rules, or check that they are up to date.

From the repository root::

    python -m tools.generate --write   # (re)write the generated files
    python -m tools.generate --check   # exit 1 when a committed file differs from its generator

The files live in the shipped stack, ``src/tiertrace/assets`` (``--out`` names another root):
``grafana/dashboards/*.json`` from `tools.dashboards` and
``prometheus/rules/tiertrace.rules.yml`` from `tools.rules`. ``make assets`` runs ``--write``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools import dashboards, rules

ASSETS = Path(__file__).resolve().parents[1] / "src" / "tiertrace" / "assets"
"""The shipped stack in the source tree (package data of ``tiertrace``)."""
DASHBOARDS_DIR = "grafana/dashboards"


def render() -> dict[str, str]:
    """Path relative to the assets root -> generated text, for every generated file."""
    files = {f"{DASHBOARDS_DIR}/{name}": text for name, text in dashboards.render().items()}
    files[rules.RULES_PATH] = rules.render_rules()
    return files


def stale(root: Path) -> list[Path]:
    """Generated files under ``root`` that are missing or differ from their generator."""
    return [
        root / relative
        for relative, text in render().items()
        if not (root / relative).is_file() or (root / relative).read_text("utf-8") != text
    ]


def write(root: Path) -> list[Path]:
    """Write every generated file under ``root``; returns the paths written."""
    written = []
    for relative, text in render().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.generate", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the generated files")
    mode.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    parser.add_argument("--out", type=Path, default=ASSETS, help=f"assets root (default {ASSETS})")
    args = parser.parse_args(argv)
    if args.write:
        for path in write(args.out):
            print(f"wrote {path}")
        return 0
    outdated = stale(args.out)
    for path in outdated:
        print(f"stale: {path}; run python -m tools.generate --write")
    return 1 if outdated else 0


if __name__ == "__main__":
    sys.exit(main())
