"""Redis (L1): redis-py sync, asyncio and cluster clients, pipelines and transactions."""

from tiertrace._instrument.redis.instrumentor import RedisInstrumentor

__all__ = ["RedisInstrumentor"]
