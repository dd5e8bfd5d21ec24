"""No per-access object stays alive: repeated identical work keeps memory flat once warm.

psycopg's own leak tests count live objects across repeated identical work; tiertrace must not
make them fail. Here the whole of tiertrace is on (metrics, lookups, advisor, stats, spans): after
the statement shape has been seen, thousands more accesses add no live object and no memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# per work: set-up, the repeated call, how many calls a round (a connection each is slower)
_WORK = {
    "redis": ("import redis; c = redis.Redis.from_url(sys.argv[1]); c.set('soak:1', 'v')",
              "c.get('soak:1')", 2000),
    "psycopg": ("import psycopg; c = psycopg.connect(sys.argv[1], autocommit=True)",
                "c.execute('SELECT %s::int', (1,)).fetchall()", 2000),
    # a client or connection per call, as a service that connects per request (and psycopg's
    # own leak tests) does: nothing may be kept per connection or pool
    "redis, a client each": ("import redis",
                             "redis.Redis.from_url(sys.argv[1]).get('soak:1')", 300),
    "psycopg, a connection each": (
        "import psycopg",
        "with psycopg.connect(sys.argv[1], autocommit=True) as c: c.execute('SELECT 1').fetchall()",
        150),
}  # fmt: skip

_SCRIPT = """
import gc, json, os, sys, tracemalloc
import tiertrace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

class Drop(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(Drop()))
# a week's window: its buckets last 168 minutes, so no bucket rolls over (a one-off allocation
# of the advisor's ring arrays) during the few seconds measured
tiertrace.init(exporter="none", tracer_provider=provider, advisor_min_accesses=1,
               advisor_window_s=604800.0)
{setup}
def run(n):
    for _ in range(n):
        {call}
OURS = [tracemalloc.Filter(True, os.path.dirname(tiertrace.__file__) + os.sep + "*")]
def ours():
    # live memory allocated by tiertrace's own lines (redis-py's and the standard library's
    # per-client caches are not ours to judge)
    return sum(t.size for t in tracemalloc.take_snapshot().filter_traces(OURS).traces)
run(300)  # the shape is seen; tables and slots exist
tiertrace.stats()
tracemalloc.start()
gc.collect()
base_objects, base_bytes = len(gc.get_objects()), ours()
out = []
for _ in range(3):
    run({calls})
    {between}
    gc.collect()
    out.append((len(gc.get_objects()) - base_objects, ours() - base_bytes))
print(json.dumps(out))
tiertrace.shutdown()
"""


@pytest.mark.parametrize("client", sorted(_WORK))
def test_repeated_identical_work_keeps_live_objects_and_memory_flat(
    client: str, redis_url: str, pg_dsn: str
) -> None:
    setup, call, calls = _WORK[client]
    # psycopg's own leak tests call nothing of tiertrace between repetitions: with a connection
    # each, neither does this round (the connection's close hands over what tiertrace queued)
    between = "pass" if client == "psycopg, a connection each" else "tiertrace.stats()"
    script = textwrap.dedent(_SCRIPT).format(setup=setup, call=call, calls=calls, between=between)
    target = redis_url if client.startswith("redis") else pg_dsn
    done = subprocess.run(
        [sys.executable, "-c", script, target], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    rounds = json.loads(done.stdout.strip().splitlines()[-1])
    objects = [o for o, _b in rounds]
    memory = [b for _o, b in rounds]
    # thousands more accesses (or hundreds more connections) with spans, lookups, stats and the
    # advisor: nothing accumulates (a tuple kept per access for a 1,000-entry window alone
    # would add ~2,000 objects, 150 kB; a cache entry per connection, 2 tuples each)
    assert max(objects) - min(objects) < 20, rounds
    assert max(abs(o) for o in objects) < 100, rounds
    assert max(memory) < 40_000, rounds
    assert max(memory) - min(memory) < 5_000, rounds
