"""PostgreSQL (L2): psycopg 3 connections, cursors, server cursors, pipelines and pools."""

from tiertrace._instrument.psycopg.instrumentor import PsycopgInstrumentor

__all__ = ["PsycopgInstrumentor"]
