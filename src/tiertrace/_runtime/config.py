"""Configuration: keyword arguments first, ``TIERTRACE_*`` environment variables second.

Every setting of `tiertrace.init()` can also come from the environment variable
``TIERTRACE_<SETTING IN CAPITALS>``; a keyword argument wins over the variable. Exporters read the
standard ``OTEL_*`` variables themselves (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``…_HEADERS``, TLS
settings, ``OTEL_SERVICE_NAME`` …).

* ``exporter`` — ``otlp`` (default), ``prometheus``, ``console`` or ``none``
* ``prometheus_port`` / ``prometheus_host`` — ``9464`` / ``127.0.0.1``
* ``capture_keys`` — how Redis keys appear: ``template`` (default), ``hash``, ``raw``, ``none``
* ``capture_query_text`` — sanitized SQL in ``db.query.text`` (default true)
* ``capture_error_messages`` — exception messages on failed access spans (default false: client
  errors quote user data; spans carry the exception type, ``error.type`` and the status code)
* ``implicit_lookups`` / ``implicit_window_s`` — implicit grouping (true / 1.0 s)
* ``single_access_events`` — also log ``memory_tier_access`` for implicit lookups of one access
  (false: they are most of the traffic; see `tiertrace._lookups.events`)
* ``advisor``, ``advisor_window_s``, ``advisor_capacity``, ``advisor_min_accesses`` — the
  optimization advisor (true, 3600 s, 10,000 keys, 10 reads)
* ``stats_window_s`` — seconds in the ``window`` view of ``stats()`` (60; see
  `tiertrace._runtime.stats`)
* ``min_projection_window_s`` — seconds a tier must be observed before ``stats()`` and the
  report project its cost per day (60; before that they say "collecting")
* ``prices`` — USD per access by tier name, overriding the prices of ``tiers``; the variable
  takes ``name=price`` entries separated by commas, ``name:OPERATION=price`` for one operation:
  ``TIERTRACE_PRICES="redis=0.0002,postgresql=0.002,chroma=0.02,redis:GET=0.0001"``
* ``target_cache_effectiveness``, ``target_lookup_latency_ms``, ``target_l1_hit_rate`` — the
  performance targets (0.70, 50 ms, 0.40)
* ``whatif_sample_rate`` — share of Redis (L1) keys the TTL what-if replays, by a stable hash
  of the key (1/64 = 0.015625; 1 keeps every key; see `tiertrace._advisor.whatif`)
* ``semconv_metrics`` — also record ``db.client.operation.duration`` (false)
* ``bridge_readers`` — give every reader of the meter provider in use tiertrace's fast metric
  path (false; see `tiertrace.bridge_reader`)
* ``instrument`` — which client libraries to instrument (every installed one of
  ``redis,psycopg,chroma``; the variable takes a comma-separated list)

Example: ``TIERTRACE_EXPORTER=prometheus TIERTRACE_PROMETHEUS_PORT=9500 python app.py``.

``tiers`` (a list of `tiertrace.Tier`) and the ``tracer_provider`` / ``meter_provider`` /
``logger_provider`` objects are keyword-only. A malformed value raises `tiertrace.ConfigError`
naming the setting, the variable it came from and what to write instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from tiertrace._advisor.whatif import DEFAULT_RATE
from tiertrace._contract.targets import CACHE_EFFECTIVENESS, L1_HIT_RATE, LOOKUP_LATENCY, TARGETS
from tiertrace._core.errors import ConfigError
from tiertrace._core.tiers import DEFAULT_TIERS, Tier, validate_tiers

EXPORTERS = ("otlp", "prometheus", "console", "none")
CAPTURE_KEYS = ("template", "hash", "raw", "none")
CLIENTS = ("redis", "psycopg", "chroma")
# tier and distribution names accepted for a client in ``instrument``
CLIENT_ALIASES = {"postgresql": "psycopg", "postgres": "psycopg", "chromadb": "chroma"}


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one `tiertrace.init()` (``handle().settings``).

    One field per keyword argument of `tiertrace.init`, with the same meaning; the defaults
    below are the ones a bare ``init()`` uses when no ``TIERTRACE_*`` variable is set. The
    configuration page of the documentation lists every field with its variable.
    """

    exporter: str = "otlp"
    prometheus_port: int = 9464
    prometheus_host: str = "127.0.0.1"
    capture_keys: str = "template"
    capture_query_text: bool = True
    capture_error_messages: bool = False
    implicit_lookups: bool = True
    implicit_window_s: float = 1.0
    single_access_events: bool = False
    advisor: bool = True
    advisor_window_s: float = 3600.0
    advisor_capacity: int = 10_000
    advisor_min_accesses: int = 10
    whatif_sample_rate: float = DEFAULT_RATE
    stats_window_s: float = 60.0
    min_projection_window_s: float = 60.0
    target_cache_effectiveness: float = CACHE_EFFECTIVENESS.value
    target_lookup_latency_ms: float = LOOKUP_LATENCY.value
    target_l1_hit_rate: float = L1_HIT_RATE.value
    semconv_metrics: bool = False
    bridge_readers: bool = False
    instrument: tuple[str, ...] = CLIENTS
    prices: Mapping[str, float] | None = None
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    tracer_provider: Any = None
    meter_provider: Any = None
    logger_provider: Any = None


class Prices(dict[str, float]):
    """Prices given in ``prices`` (``"tier"`` or ``"tier:OPERATION"`` → USD), with their origin.

    ``source`` is ``"init"`` (the keyword argument) or ``"environment"`` (``TIERTRACE_PRICES``).
    """

    source: str = "init"


def _price_map(value: Any, origin: str) -> Prices:
    """``prices`` as given (a mapping, or the variable's ``name=price,…`` text) checked."""
    how = "write name=USD per access or name:OPERATION=USD, e.g. redis=0.0002,redis:GET=0.0001"
    if isinstance(value, str):
        entries: list[tuple[str, Any]] = []
        for entry in (e.strip() for e in value.split(",")):
            if not entry:
                continue
            name, eq, price = entry.partition("=")
            try:
                number = float(price) if eq else None
            except ValueError:
                number = None
            if not name.strip() or number is None:
                raise ConfigError(f"{origin}: prices entry {entry!r} is invalid; {how}")
            entries.append((name.strip(), number))
    elif isinstance(value, Mapping):
        entries = list(value.items())
    else:
        raise ConfigError(
            f"{origin}: prices={value!r} is invalid; use a dict like {{'redis': 0.0002}}"
        )
    out = Prices()
    for name, price in entries:
        shown = f"{name}={price!r}"
        if not isinstance(name, str) or not name.strip(":") or name.count(":") > 1:
            raise ConfigError(f"{origin}: prices entry {shown!r} is invalid; {how}")
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not price >= 0:
            raise ConfigError(
                f"{origin}: prices entry {shown!r} is invalid; a price is a number >= 0 (USD)"
            )
        out[name] = float(price)
    return out


def apply_prices(tiers: Sequence[Tier], prices: Prices, origin: str) -> tuple[Tier, ...]:
    """``tiers`` with the prices of ``prices`` put in; `ConfigError` for a name no tier has."""
    names = {t.name for t in tiers}
    per_access: dict[str, float] = {}
    per_op: dict[str, dict[str, float]] = {}
    for entry, price in prices.items():
        name, _, operation = entry.partition(":")
        if name not in names:
            raise ConfigError(
                f"{origin}: prices entry {entry}={price:g} names no tier; the tiers are "
                f"{', '.join(sorted(names))}"
            )
        if operation:
            per_op.setdefault(name, {})[operation] = price
        else:
            per_access[name] = price
    out = []
    for tier in tiers:
        if tier.name in per_access or tier.name in per_op:
            ops = {**(tier.cost_per_operation or {}), **per_op.get(tier.name, {})}
            tier = replace(
                tier,
                cost_per_access=per_access.get(tier.name, tier.cost_per_access),
                cost_per_operation=ops or None,
            )
        out.append(tier)
    return tuple(out)


_RATIO_TARGETS = {t.setting for t in TARGETS if t.unit == "1"}
_OBJECTS = ("prices", "tiers", "tracer_provider", "meter_provider", "logger_provider")
_PROVIDER_METHOD = {
    "tracer_provider": "get_tracer",
    "meter_provider": "get_meter",
    "logger_provider": "get_logger",
}


_BOOLS = {f.name for f in fields(Settings) if f.type == "bool"}
_NUMBERS = {f.name for f in fields(Settings) if f.type in ("int", "float")}


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _clients(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


_PARSERS: dict[str, Callable[[str], Any]] = {
    "bool": _bool,
    "int": int,
    "float": float,
    "str": str.strip,
    "tuple[str, ...]": _clients,
}


def _check(name: str, value: Any, origin: str) -> Any:
    """Validate one value; ``origin`` says where it came from, for the message."""

    def bad(fix: str) -> ConfigError:
        return ConfigError(f"{origin}: {name}={value!r} is invalid; {fix}")

    if name in _BOOLS and not isinstance(value, bool):
        raise bad("use True or False")
    if name in _NUMBERS and isinstance(value, bool):
        raise bad("use a number, not True/False")
    if name == "exporter" and value not in EXPORTERS:
        raise bad(f"use one of {', '.join(map(repr, EXPORTERS))}")
    if name == "capture_keys" and value not in CAPTURE_KEYS:
        raise bad(f"use one of {', '.join(map(repr, CAPTURE_KEYS))}")
    if name == "prometheus_port" and not (isinstance(value, int) and 0 <= value <= 65535):
        raise bad("use a TCP port number between 0 and 65535")
    if name == "instrument":
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise bad(f"use a list of client names from {CLIENTS}")
        names = [CLIENT_ALIASES.get(v, v) if isinstance(v, str) else v for v in value]
        unknown = [v for v, n in zip(value, names, strict=True) if n not in CLIENTS]
        if unknown:
            raise bad(f"unknown client(s) {unknown}; use names from {CLIENTS} or postgresql")
        return tuple(dict.fromkeys(names))
    if name == "min_projection_window_s" and not (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    ):
        raise bad("use a number of seconds >= 0")
    if name in (
        "implicit_window_s",
        "advisor_window_s",
        "stats_window_s",
        LOOKUP_LATENCY.setting,
    ) and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
        raise bad("use a number > 0")
    if name in ("advisor_capacity", "advisor_min_accesses") and not (
        isinstance(value, int) and not isinstance(value, bool) and value >= 1
    ):
        raise bad("use a whole number >= 1")
    if name == "whatif_sample_rate" and not (
        isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
    ):
        raise bad("use a share of keys with 0 < rate <= 1 (1/64 = 0.015625; 1 keeps every key)")
    if name in _RATIO_TARGETS and not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise bad("use a ratio between 0 and 1")
    return value


def resolve(kwargs: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Merge keyword arguments and ``TIERTRACE_*`` variables into `Settings`."""
    env = os.environ if environ is None else environ
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ConfigError(
            f"init(): unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(known)}"
        )
    values: dict[str, Any] = {}
    for name, fld in known.items():
        if name in kwargs:
            value = kwargs[name]
            if value is None and (name not in _OBJECTS or name == "prices"):
                continue
            if name == "prices":
                value = _price_map(value, "init()")
            values[name] = value if name in _OBJECTS else _check(name, value, "init()")
            continue
        var = f"TIERTRACE_{name.upper()}"
        if name == "prices" and var in env:
            values[name] = _price_map(env[var], f"environment {var}")
            values[name].source = "environment"
            continue
        if name in _OBJECTS or var not in env:
            continue
        parser = _PARSERS[str(fld.type)]
        try:
            parsed = parser(env[var])
        except ValueError:
            kind = str(fld.type).replace("tuple[str, ...]", "comma-separated list")
            raise ConfigError(
                f"environment: {var}={env[var]!r} is not a valid {kind}; fix or unset it"
            ) from None
        values[name] = _check(name, parsed, f"environment {var}")
    if "tiers" in values:
        values["tiers"] = validate_tiers(values["tiers"])
    if values.get("prices"):
        prices = values["prices"]
        where = "init()" if prices.source == "init" else "environment TIERTRACE_PRICES"
        values["tiers"] = apply_prices(values.get("tiers", DEFAULT_TIERS), prices, where)
    for name, method in _PROVIDER_METHOD.items():
        if values.get(name) is not None and not callable(getattr(values[name], method, None)):
            raise ConfigError(
                f"init(): {name}={values[name]!r} is not an OpenTelemetry provider (it has no "
                f"{method}()); pass an SDK provider or leave it out"
            )
    return Settings(**values)
