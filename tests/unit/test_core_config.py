"""Bad configuration raises ConfigError naming the setting and the fix."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import tiertrace
from tiertrace import ConfigError, Tier


@pytest.fixture(autouse=True)
def _clean() -> Any:
    yield
    tiertrace.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"exporter": "zipkin"}, ["exporter", "zipkin", "'otlp'"]),
        ({"capture_keys": "all"}, ["capture_keys", "'template'"]),
        ({"prometheus_port": 70000}, ["prometheus_port", "65535"]),
        ({"implicit_window_s": 0}, ["implicit_window_s", "> 0"]),
        ({"instrument": ["mysql"]}, ["instrument", "mysql"]),
        ({"target_cache_effectiveness": 7}, ["target_cache_effectiveness", "between 0 and 1"]),
        ({"tiers": []}, ["tiers", "non-empty"]),
        (
            {"tiers": [Tier("a", 1, "redis", 0.1), Tier("a", 2, "postgresql", 0.1)]},
            ["duplicate tier name", "'a'"],
        ),
        (
            {"tiers": [Tier("a", 1, "redis", 0.1), Tier("b", 1, "postgresql", 0.1)]},
            ["duplicate level 1"],
        ),
        ({"tiers": [Tier("a", 1, "redis", -0.5)]}, ["cost", "-0.5", ">= 0"]),
        ({"tiers": [Tier("a", 1, "mysql", 0.1)]}, ["system", "mysql"]),
    ],
)
def test_bad_setting_raises_config_error_naming_it(
    kwargs: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        tiertrace.init(**kwargs)
    for word in words:
        assert word in str(caught.value)


def test_unknown_keyword_is_rejected_by_the_typed_signature() -> None:
    with pytest.raises(TypeError, match="colour"):
        tiertrace.init(colour="red")  # type: ignore[call-arg]


def test_init_signature_names_every_setting_with_a_type_and_a_doc() -> None:
    import dataclasses
    import inspect

    params = inspect.signature(tiertrace.init).parameters
    settings = [f.name for f in dataclasses.fields(tiertrace.Settings)]
    assert list(params) == settings
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert all(p.annotation is not inspect.Parameter.empty for p in params.values())
    doc = tiertrace.init.__doc__ or ""
    assert [name for name in settings if f"{name}:" not in doc] == []


def test_instrument_accepts_tier_names() -> None:
    handle = tiertrace.init(exporter="none", instrument=["postgresql", "redis"])
    assert handle.settings.instrument == ("psycopg", "redis")


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("TIERTRACE_PROMETHEUS_PORT", "ninety", ["TIERTRACE_PROMETHEUS_PORT", "'ninety'", "int"]),
        ("TIERTRACE_IMPLICIT_LOOKUPS", "maybe", ["TIERTRACE_IMPLICIT_LOOKUPS", "bool"]),
        ("TIERTRACE_EXPORTER", "jaeger", ["TIERTRACE_EXPORTER", "jaeger"]),
    ],
)
def test_malformed_environment_value_raises_config_error(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, words: list[str]
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        tiertrace.init()
    for word in words:
        assert word in str(caught.value)


def test_keyword_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERTRACE_EXPORTER", "console")
    monkeypatch.setenv("TIERTRACE_CAPTURE_KEYS", "hash")
    handle = tiertrace.init(exporter="none")
    assert handle.settings.exporter == "none"
    assert handle.settings.capture_keys == "hash"


def test_prometheus_port_in_use_raises_config_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            tiertrace.init(exporter="prometheus", prometheus_port=port)
    assert "prometheus_port" in str(caught.value) and str(port) in str(caught.value)


def test_init_is_idempotent_and_refuses_other_settings_until_shutdown() -> None:
    first = tiertrace.init(exporter="none")
    assert tiertrace.init() is first
    assert tiertrace.init(exporter="none") is first
    with pytest.raises(ConfigError, match="shutdown"):
        tiertrace.init(exporter="console")
    tiertrace.shutdown()
    assert tiertrace.init(exporter="none") is not first


def test_instrumentors_are_registered_as_opentelemetry_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="opentelemetry_instrumentor")}
    assert names["tiertrace_redis"] == "tiertrace._instrument.redis.instrumentor:RedisInstrumentor"
    assert (
        names["tiertrace_psycopg"]
        == "tiertrace._instrument.psycopg.instrumentor:PsycopgInstrumentor"
    )
    assert (
        names["tiertrace_chroma"] == "tiertrace._instrument.chroma.instrumentor:ChromaInstrumentor"
    )
