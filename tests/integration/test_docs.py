"""The documentation site: every code block on it runs, and the site builds with --strict.

How the blocks of a page run (the page's preamble, which the reader never has to type):

* ``python`` blocks of one page run in document order as one script, in a fresh interpreter
  whose working directory is an empty temporary directory (so ``./chroma`` is a temporary
  Chroma), with no ``TIERTRACE_*``/``OTEL_*`` variable but ``TIERTRACE_PROMETHEUS_PORT`` (a
  free port) and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a closed loopback port). ``redis.Redis()``
  and ``redis.asyncio.Redis()`` become clients of this session's private redis-server
  (flushed before each page), ``"postgresql://postgres@127.0.0.1/postgres"`` a database
  created for the page. A hidden block ``<!-- test-setup ... -->`` runs at its place.
* ``text`` blocks that follow code show its output: each must appear in the page's output.
* ``sh`` blocks run when every command in them is ``tiertrace …`` (or ``cd``), after the
  page's Python; ``tiertrace demo`` gets the private services' URLs.
* ``promql`` blocks parse, and use only metric names of the contract or the shipped rules.
* ``yaml`` blocks parse.
* A block that cannot run here is preceded by ``<!-- not-run: why -->``; those are counted and
  named, and any other block that does not run fails the test.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import redis
import yaml

import tiertrace
from support import ASSETS, ROOT
from support.services import free_port, postgres_server, private_database
from tiertrace._contract import names as contract_names
from tiertrace._runtime.config import Settings, resolve

DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
RULES = ASSETS / "prometheus" / "rules" / "tiertrace.rules.yml"

FENCE = re.compile(
    r"(?:^[ ]*<!-- not-run: (?P<why>[^>]*?) -->\n)?"
    r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$"
    r"|<!-- test-setup\n(?P<setup>.*?)-->",
    re.S | re.M,
)
PG_LITERAL = '"postgresql://postgres@127.0.0.1/postgres"'


@dataclasses.dataclass
class Block:
    page: str
    index: int
    lang: str  # "setup" for a hidden test-setup block
    body: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.page}#{self.index} ({self.lang})"


def blocks(page: str) -> list[Block]:
    found = []
    for i, m in enumerate(FENCE.finditer((DOCS / page).read_text("utf-8"))):
        if m.group("setup") is not None:
            found.append(Block(page, i, "setup", m.group("setup"), None))
        else:
            body = textwrap.dedent(m.group("body")) if m.group("indent") else m.group("body")
            found.append(Block(page, i, m.group("lang"), body, m.group("why")))
    return found


def all_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page)]


# -- services -------------------------------------------------------------------------------


@pytest.fixture
def page_db() -> Iterator[str]:
    """A fresh PostgreSQL database for one page, dropped after it."""
    with postgres_server() as admin, private_database(admin) as dsn:
        yield dsn


def _page_env(redis_url: str, dsn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TIERTRACE_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["TIERTRACE_PROMETHEUS_PORT"] = str(free_port())
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    env["REDIS_URL"], env["POSTGRES_DSN"] = redis_url, dsn
    return env


def _script(page_blocks: list[Block], redis_url: str, dsn: str) -> str:
    code = "\n".join(b.body for b in page_blocks if b.lang in ("python", "setup") and not b.not_run)
    code = code.replace("redis.asyncio.Redis()", f"redis.asyncio.Redis.from_url({redis_url!r})")
    code = code.replace("redis.Redis()", f"redis.Redis.from_url({redis_url!r})")
    code = code.replace(PG_LITERAL, repr(dsn))
    assert "127.0.0.1/postgres" not in code and ":6379" not in code, "a service escaped"
    return code


def _commands(body: str) -> list[list[str]] | None:
    """The commands of a shell block, or None when one of them is not tiertrace or cd."""
    commands = []
    for line in body.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            argv = shlex.split(part)
            if not argv or argv[0] not in ("tiertrace", "cd"):
                return None
            commands.append(argv)
    return commands


def _run_shell(block: Block, cwd: Path, env: dict[str, str]) -> str:
    commands = _commands(block.body)
    assert commands is not None, f"{block.name}: not a tiertrace command; mark it not-run"
    out = []
    for argv in commands:
        if argv[0] == "cd":
            cwd = cwd / argv[1]
            continue
        if argv[1:2] == ["demo"]:
            argv += ["--redis-url", env["REDIS_URL"], "--postgres-dsn", env["POSTGRES_DSN"]]
        done = subprocess.run(
            [sys.executable, "-m", "tiertrace._cli.main", *argv[1:]],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{block.name}: {shlex.join(argv)}\n{done.stderr}"
        out.append(done.stdout)
    return "".join(out)


# -- the pages ------------------------------------------------------------------------------


RUNNABLE = ("python", "setup", "sh", "text", "promql", "yaml")


def test_every_block_on_the_site_runs_or_says_why_not() -> None:
    skipped = [b for b in all_blocks() if b.not_run]
    unknown = [b.name for b in all_blocks() if not b.not_run and b.lang not in RUNNABLE]
    assert unknown == [], "blocks no test runs; give them a language or a not-run reason"
    shell = [b for b in all_blocks() if b.lang == "sh" and not b.not_run]
    assert [b.name for b in shell if _commands(b.body) is None] == []
    texts = [b for b in all_blocks() if b.lang == "text" and not b.not_run]
    for t in texts:  # an output block follows the code it is the output of
        page = blocks(t.page)
        before = [b for b in page if b.index < t.index and b.lang in ("python", "sh")]
        assert before, f"{t.name} shows the output of nothing"
    # the blocks that cannot run here, by name and reason (reported with -rA / on failure)
    print(f"{len(skipped)} blocks not run:")
    for b in skipped:
        print(f"  {b.name}: {b.not_run}")
    assert all(b.not_run and b.not_run.strip() for b in skipped)


@pytest.mark.parametrize(
    "page",
    [
        p
        for p in PAGES
        if any(b.lang in ("python", "sh", "setup") and not b.not_run for b in blocks(p))
    ],
)
def test_page_code_runs_and_prints_what_the_page_shows(
    page: str, redis_url: str, page_db: str, tmp_path: Path
) -> None:
    page_blocks = blocks(page)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    env = _page_env(redis_url, page_db)
    output = ""
    code = _script(page_blocks, redis_url, page_db)
    if code.strip():
        script = tmp_path / "page.py"
        script.write_text(code, "utf-8")
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{page}:\n{done.stdout}\n{done.stderr}"
        output = done.stdout
    for b in page_blocks:
        if b.lang == "sh" and not b.not_run:
            output += _run_shell(b, tmp_path, env)
    for b in page_blocks:
        if b.lang == "text" and not b.not_run:
            assert b.body.strip() in output, f"{b.name} is not what the code printed:\n{output}"


def _rules() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text("utf-8"))["groups"]
    return {r.get("record") or r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def _known_metrics() -> set[str]:
    known = set(_rules())
    for inst in contract_names.INSTRUMENTS:
        if inst.kind == "histogram":
            known |= {inst.series(s) for s in ("bucket", "sum", "count")}
        else:
            known.add(inst.prometheus)
    return known


def _known_labels() -> set[str]:
    labels = {"le", "job", "instance", "__name__"}
    for inst in contract_names.INSTRUMENTS:
        labels |= set(inst.labels)
    return labels


def _names_in(expr: str) -> tuple[set[str], set[str]]:
    metrics: set[str] = set()
    labels: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            metrics.update([node.name] if node.name else [])  # else: a __name__ matcher
            labels.update(m.name for m in matchers)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier:
            labels.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier:
            if node.modifier.matching:
                labels.update(node.modifier.matching.labels)
            labels.update(node.modifier.group_labels or [])

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return metrics, labels


def _promql_exprs(body: str) -> list[str]:
    """The expressions of a PromQL block: separated by blank lines or ``#`` comment lines."""
    exprs, current = [], []
    for line in [*body.splitlines(), ""]:
        if not line.strip() or line.lstrip().startswith("#"):
            if current:
                exprs.append("\n".join(current))
            current = []
        else:
            current.append(line)
    return exprs


def test_promql_blocks_parse_and_use_only_contract_names() -> None:
    known_metrics, known_labels = _known_metrics(), _known_labels()
    checked = 0
    for b in all_blocks():
        if b.lang != "promql" or b.not_run:
            continue
        for expr in _promql_exprs(b.body):
            metrics, labels = _names_in(expr)
            assert metrics <= known_metrics, f"{b.name}: unknown {metrics - known_metrics}"
            assert labels <= known_labels, f"{b.name}: unknown labels {labels - known_labels}"
            checked += 1
    assert checked >= 10


def test_promql_blocks_named_after_a_rule_show_the_shipped_rule() -> None:
    """A block whose first line is ``# rule: NAME`` shows exactly that rule's expression."""
    rules, shown = _rules(), 0
    squash = lambda s: " ".join(s.split())  # noqa: E731
    for b in all_blocks():
        m = re.match(r"# rule: (\S+)\n(.*)", b.body, re.S) if b.lang == "promql" else None
        if m:
            assert squash(m.group(2)) == squash(rules[m.group(1)]), b.name
            shown += 1
    assert shown >= 5


def test_yaml_blocks_parse() -> None:
    for b in all_blocks():
        if b.lang == "yaml" and not b.not_run:
            assert list(yaml.safe_load_all(b.body)), b.name


def test_no_page_sends_users_to_a_private_module() -> None:
    for page in PAGES:
        text = (DOCS / page).read_text("utf-8")
        hidden = re.sub(r"<!-- test-setup\n.*?-->", "", text, flags=re.S)
        assert re.findall(r"tiertrace\._\w+", hidden) == [], page
        assert "pydoc" not in hidden, page


# -- configuration reference ----------------------------------------------------------------


def _default_cell(field: dataclasses.Field[Any]) -> str:
    value = field.default
    if field.name == "tiers":
        return "`DEFAULT_TIERS`"
    if field.name.endswith("_provider"):
        return "the global provider"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`"
    return f"`{value}`"


def _config_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (DOCS / "configuration.md").read_text("utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 4:
            rows[cells[0].strip("`")] = cells
    return rows


def test_configuration_page_lists_every_setting_with_its_variable_and_default() -> None:
    rows = _config_rows()
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert set(rows) == set(fields)
    keyword_only = {"tiers", "tracer_provider", "meter_provider", "logger_provider"}
    for name, field in fields.items():
        _, variable, default, *_ = rows[name]
        want_var = "keyword only" if name in keyword_only else f"`TIERTRACE_{name.upper()}`"
        assert variable == want_var, name
        assert default == _default_cell(field), name


def test_every_variable_on_the_configuration_page_sets_its_setting() -> None:
    for name, (_, variable, default, *_) in _config_rows().items():
        if variable == "keyword only" or default == "`None`":  # None: the variable is unset
            continue
        settings = resolve({}, {variable.strip("`"): default.strip("`")})
        assert getattr(settings, name) == getattr(Settings(), name), name


def test_init_takes_exactly_the_settings() -> None:
    import inspect

    params = set(inspect.signature(tiertrace.init).parameters)
    assert params == {f.name for f in dataclasses.fields(Settings)}


# -- API reference and build ----------------------------------------------------------------


def test_api_page_documents_exactly_the_public_api() -> None:
    text = (DOCS / "api.md").read_text("utf-8")
    members = re.findall(r"^ {8}- (\w+)$", text, re.M)
    assert sorted(members) == sorted(n for n in tiertrace.__all__ if n != "__version__")


def test_site_builds_with_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (site / "api.html").read_text("utf-8")
    for name in tiertrace.__all__:
        if name != "__version__":
            assert f'id="tiertrace.{name}"' in api, name
    assert not re.search(r'id="tiertrace\._', api)
    assert "Raises" in api and "Returns" in api
