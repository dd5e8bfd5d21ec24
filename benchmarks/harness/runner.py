"""The overhead run: calibrate, interleaved repetitions of every configuration, floor,
throughput, report."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import report
from .floor import measure_floor
from .modes import CONFIGS, Pristine, activate, around_span
from .services import Env, Services
from .throughput import throughput
from .timing import Timing, batch_size, overhead_stats, rotated, timed_batch
from .workload import OPS, Clients, Op, seed_redis

Log = Callable[[str], None]


@dataclass
class Plan:
    reps: int
    target_s: float
    throughput_s: float
    throughput_rounds: int
    ops: tuple[Op, ...] = OPS
    sizes: dict[str, int] = field(default_factory=dict)
    floor: bool = True

    def configs(self) -> tuple[str, ...]:
        """The configurations at least one planned operation runs under."""
        return tuple(c for c in CONFIGS if any(c in op.configs for op in self.ops))


def _time_op(env: Env, op: Op, fn: Callable[[], Any], n: int) -> Timing:
    return timed_batch(fn, n, env.loop if op.is_async else None)


def calibrate(env: Env, plan: Plan) -> dict[str, float]:
    """Batch sizes so that a raw batch lasts about ``plan.target_s``."""
    active = activate("raw")
    clients = Clients(env, "raw")
    clients.check("raw")
    fns = clients.ops()
    estimate: dict[str, float] = {}
    for op in plan.ops:
        us = min(_time_op(env, op, fns[op.name], 30)[0] for _ in range(2))
        estimate[op.name] = us
        plan.sizes[op.name] = batch_size(us, plan.target_s)
    clients.close()
    active.close()
    return estimate


def measure(
    env: Env, plan: Plan, pristine: Pristine, log: Log
) -> tuple[dict[str, dict[str, list[Timing]]], dict[str, dict[str, int]]]:
    samples: dict[str, dict[str, list[Timing]]] = {
        op.name: {c: [] for c in op.configs} for op in plan.ops
    }
    produced: dict[str, dict[str, int]] = {}
    configs = plan.configs()
    for rep in range(plan.reps):
        t0 = time.monotonic()
        for config in rotated(configs, rep):
            active = activate(config)
            clients = Clients(env, config)
            if rep == 0:
                clients.check(config)
            fns = clients.ops()
            for op in plan.ops:
                if config in op.configs:
                    fn = fns[op.name]
                    if active.tracer is not None:  # ``span``: the call in a bare span
                        fn = around_span(fn, active.tracer, op.is_async)
                    timing = _time_op(env, op, fn, plan.sizes[op.name])
                    samples[op.name][config].append(timing)
            clients.close()
            made = active.close()
            for k, v in made.items():
                produced.setdefault(config, {}).setdefault(k, 0)
                produced[config][k] += v
            pristine.check()
        log(f"  repetition {rep + 1}/{plan.reps} done in {time.monotonic() - t0:.1f} s")
    return samples, produced


def summarize(samples: dict[str, dict[str, list[Timing]]]) -> dict[str, dict[str, Any]]:
    """Wall-clock figures at the top level; the calling thread's CPU time under ``cpu``."""
    out: dict[str, dict[str, Any]] = {}
    for op in OPS:
        s = samples.get(op.name)
        if not s:
            continue
        wall = {c: [t[0] for t in v] for c, v in s.items()}
        cpu = {c: [t[1] for t in v] for c, v in s.items()}
        out[op.name] = {
            "label": op.label,
            "accesses": op.accesses,
            **overhead_stats(wall),
            "cpu": overhead_stats(cpu),
            "samples_us": wall,
            "samples_cpu_us": cpu,
        }
    return out


def run_overhead(
    plan: Plan, quick: bool, throughput_on: bool, log: Log, started: float | None = None
) -> dict[str, Any]:
    """The whole run; returns the report (the JSON). ``started``: ``time.monotonic()`` at the
    start of the process, for the elapsed time reported."""
    started = time.monotonic() if started is None else started
    pristine = Pristine()
    services = Services(log, seed=seed_redis)
    env = services.env
    try:
        gc.collect()
        gc.freeze()  # setup objects out of the collector's way
        estimate = calibrate(env, plan)
        per_config = sum(plan.sizes[o.name] * estimate[o.name] for o in plan.ops) * 1.1 / 1e6
        log(f"calibrated; about {per_config * 4 * plan.reps * 1.6:.0f} s of timed batches")
        samples, produced = measure(env, plan, pristine, log)
        ops = summarize(samples)
        floor = measure_floor(plan.reps, plan.target_s) if plan.floor else None
        if floor is not None:
            log("  SDK floor done")
        tput = (
            throughput(env, plan.throughput_s, plan.throughput_rounds, log)
            if throughput_on
            else None
        )
        pristine.check()
        assert services.db is not None
        result: dict[str, Any] = {
            "machine": report.machine(services.server.version, services.db.version, services.cpu),
            "method": {
                "repetitions": plan.reps,
                "target_batch_ms": plan.target_s * 1000,
                "calls_per_batch": plan.sizes,
                "quick": quick,
                "load_average": os.getloadavg(),
                "telemetry_produced": produced,
                "elapsed_s": time.monotonic() - started,
            },
            "ops": ops,
            "floor": floor,
            "throughput": tput,
        }
        result["goals"] = report.goals(ops, tput)
    finally:
        services.stop()
    return result
