"""Chroma (L3): chromadb collections, embedded and HTTP, sync and async."""

from tiertrace._instrument.chroma.embedding import HashingEmbeddingFunction
from tiertrace._instrument.chroma.instrumentor import ChromaInstrumentor

__all__ = ["ChromaInstrumentor", "HashingEmbeddingFunction"]
