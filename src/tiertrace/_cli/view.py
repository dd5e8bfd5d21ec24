"""What ``tiertrace demo`` shows while it runs: a live view, or one progress line per second.

On a terminal (and with the ``rich`` package of the ``cli`` extra) the view is redrawn every
second from the ``window`` view of `tiertrace.stats()` (the last seconds of the run:
``stats_window_s``, 5 s in the demo unless ``TIERTRACE_STATS_WINDOW_S`` says otherwise):

* per tier: hit rate, mean and p95 latency, accesses, cost per day at the tier's observed rate
  (``collecting (N s of 60 s)`` until the tier has been observed for a minute), and the prices
  the costs are computed with;
* which tier served the lookups, as bars;
* cache effectiveness (lookups served by L1) against its 70 % target, with its history;
* the advisor's top pre-cache suggestions;
* a progress bar (lookups, or seconds when only ``--duration`` limits the run).

With ``--no-live``, ``--json`` or when the output is not a terminal, one line per second::

    [  6.0 s]  905/3,000 lookups  151/s  served: redis 47% postgresql 41% chroma 12% none 0%
    cache 47.3 % (target 70 %) ▁▂▄▅  cost/day collecting (6 s of 60 s)
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, TextIO

from tiertrace._cli.report import projected

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """Values in 0..1 as block characters."""
    return "".join(SPARK[min(len(SPARK) - 1, max(0, int(v * len(SPARK))))] for v in values)


def cost_per_day(view: dict[str, Any], row: dict[str, Any] | None = None) -> str:
    """A view's (or one tier row's) cost per day, or ``collecting (N s of 60 s)``."""
    window = float(view.get("min_projection_window_s") or 0.0)
    r = view if row is None else row
    return projected(r.get("cost_per_day_usd"), float(r.get("projection_needs_s") or 0.0), window)


def _target(snap: dict[str, Any]) -> float:
    for t in snap.get("targets", []):
        if t.get("name") == "cache_effectiveness":
            return float(t.get("target", 0.7))
    return 0.7


class PlainView:
    """One progress line per update."""

    def __init__(self, out: TextIO, lookups: int, duration: float) -> None:
        self.out, self.lookups, self.duration = out, lookups, duration
        self.history: list[float] = []
        self.pinned = 0  # keys kept in Redis on the advisor's suggestion
        self.last = (-1, 0.0)  # (done, elapsed) of the last line

    def __enter__(self) -> PlainView:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def update(self, snap: dict[str, Any], done: int, elapsed: float) -> None:
        if not snap or (done == self.last[0] and elapsed - self.last[1] < 0.5):
            return
        self.last = (done, elapsed)
        w = snap["window"]
        self.history = ([*self.history, w["cache_effectiveness"]])[-30:]
        total = w["lookups"] or 1
        served = " ".join(f"{n} {c / total * 100:.0f}%" for n, c in w["served_by"].items())
        limit = f"/{self.lookups:,}" if self.lookups else ""
        self.out.write(
            f"[{elapsed:6.1f} s] {done:,}{limit} lookups {done / max(elapsed, 1e-9):,.0f}/s  "
            f"served: {served}  cache {w['cache_effectiveness'] * 100:.1f} % "
            f"(target {_target(snap) * 100:.0f} %) {sparkline(self.history)}"
            f"  cost/day {cost_per_day(w)}"
            + (f"  pre-cached {self.pinned}" if self.pinned else "")
            + "\n"
        )
        self.out.flush()


class LiveView(PlainView):
    """The rich live view (see the module documentation)."""

    def __init__(self, out: TextIO, lookups: int, duration: float) -> None:
        super().__init__(out, lookups, duration)
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self.console = Console(file=out)
        self.live = Live(
            Text("starting agents…"), console=self.console, refresh_per_second=1, transient=False
        )

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.live.__exit__(kind, exc, tb)

    def update(self, snap: dict[str, Any], done: int, elapsed: float) -> None:
        if not snap:
            return
        self.history = ([*self.history, snap["window"]["cache_effectiveness"]])[-40:]
        self.live.update(self.render(snap, done, elapsed), refresh=True)

    def render(self, snap: dict[str, Any], done: int, elapsed: float) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        from tiertrace._cli.html import color
        from tiertrace._cli.report import price_lines

        w, total = snap["window"], snap["total"]
        tiers = Table(title=f"tiers (last {w['elapsed_s']:.0f} s)", title_justify="left")
        for head in ("tier", "hit rate", "mean ms", "p95 ms", "accesses (total)", "cost/day"):
            tiers.add_column(head, justify="left" if head == "tier" else "right")
        for i, (name, r) in enumerate(w["tiers"].items()):
            tiers.add_row(
                Text(f"L{r['level']} {name}", style=color(name, i)),
                f"{r['hit_rate'] * 100:.1f} %",
                f"{r['mean_ms']:.2f}",
                f"{r['p95_ms']:.2f}",
                f"{total['tiers'][name]['accesses']:,}",
                cost_per_day(w, r),
            )
        tiers.add_row("total", "", "", "", f"{total['lookups']:,} lookups", cost_per_day(w))
        prices = Text(
            "\n".join(price_lines({"prices": snap.get("prices"), "source": {"kind": "live"}})),
            style="dim",
        )
        served = Table.grid(padding=(0, 1))
        lookups = w["lookups"] or 1
        for i, (name, count) in enumerate(w["served_by"].items()):
            share = count / lookups
            served.add_row(
                Text(f"{name:<11}"),
                ProgressBar(total=1.0, completed=share, width=40, complete_style=color(name, i)),
                f"{share * 100:5.1f} %",
            )
        target, eff = _target(snap), w["cache_effectiveness"]
        style = "green" if eff > target else "yellow"
        gauge = Text.assemble(
            ("cache effectiveness ", "bold"),
            (f"{eff * 100:.1f} %", f"bold {style}"),
            f"  target {target * 100:.0f} %  ",
            (sparkline(self.history), style),
        )
        marker = Text(" " * 12 + " " * int(target * 40) + "▲ target")
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            Text(f"{'L1 share':<11}"),
            ProgressBar(total=1.0, completed=eff, width=40, complete_style=style),
        )
        tips = Text()
        found = [s for s in snap.get("suggestions", []) if s.get("kind") == "pre-cache"]
        for s in found[:3]:
            tips.append(f"• {s.get('message')}\n")
        if self.pinned:
            tips.append(f"  {self.pinned} suggested keys kept in Redis so far\n", style="dim")
        limit = self.lookups or 0
        progress = Table.grid(padding=(0, 1))
        if limit:
            progress.add_row(
                ProgressBar(total=limit, completed=done, width=50),
                f"{done:,}/{limit:,} lookups  {elapsed:.0f} s",
            )
        elif self.duration:
            progress.add_row(
                ProgressBar(total=self.duration, completed=elapsed, width=50),
                f"{elapsed:.0f}/{self.duration:g} s  {done:,} lookups",
            )
        else:
            progress.add_row(f"{done:,} lookups  {elapsed:.0f} s  (Ctrl-C to stop)")
        body = Group(
            tiers,
            prices,
            Text("served by", style="bold"),
            served,
            gauge,
            bar,
            marker,
            Text("pre-cache suggestions", style="bold"),
            tips or Text("(none yet)\n"),
            progress,
        )
        return Panel(body, title="tiertrace demo — Redis L1 → PostgreSQL L2 → Chroma L3")


def make_view(live: bool, out: TextIO, lookups: int, duration: float) -> PlainView:
    """The live view when asked and possible, else the progress lines."""
    if live and out.isatty():
        try:
            return LiveView(out, lookups, duration)
        except ImportError:
            pass
    return PlainView(out, lookups, duration)
