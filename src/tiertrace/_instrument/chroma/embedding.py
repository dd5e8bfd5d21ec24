"""An offline, deterministic embedding function for demos, tests and air-gapped machines.

Chroma's default embedding function downloads a model on first use. When you want a Chroma
collection that works without network access and without a model — the quickstart, a demo of
tiertrace's dashboards, a CI job, a laptop on a plane — use `HashingEmbeddingFunction`::

    import chromadb
    from tiertrace import HashingEmbeddingFunction

    client = chromadb.PersistentClient("./chroma")
    memories = client.get_or_create_collection(
        "memories", embedding_function=HashingEmbeddingFunction()
    )
    memories.add(ids=["m1"], documents=["the user prefers dark mode"])
    memories.query(query_texts=["which mode does the user like?"], n_results=1)

Each text is lower-cased and split into word tokens; every token (unigram) and every pair of
adjacent tokens (bigram) is hashed with BLAKE2b into one of ``dim`` buckets with a sign, the
bucket counts are summed and the vector is L2-normalized (float32). Texts that share words get
close vectors, texts that share none are nearly orthogonal, and the same text always gets the same
vector, in every process and on every machine.

It is *lexical*, not semantic: "car" and "automobile" are unrelated to it. For real retrieval
quality choose a real embedding model (OpenAI, sentence-transformers, your provider's) — that
stays your decision; tiertrace works the same with any embedding function.

The function is registered with Chroma under the name ``tiertrace_hashing`` when it is imported
and when tiertrace instruments Chroma (``tiertrace.init()``), so a collection created with it can
be re-opened later (``client.get_collection("memories")``) without passing it again.
"""

from __future__ import annotations

import re
from functools import lru_cache
from hashlib import blake2b
from itertools import pairwise
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

__all__ = ["HashingEmbeddingFunction"]

_TOKEN = re.compile(r"\w+", re.UNICODE)
_BIGRAM_WEIGHT = 0.5
_EMPTY = "\x00empty"  # the feature of a text without any word, so it still gets a unit vector


@lru_cache(maxsize=65536)
def _slot(feature: str, dim: int) -> tuple[int, float]:
    """Bucket and sign of one feature (stable across processes: no Python ``hash``)."""
    digest = blake2b(feature.encode("utf-8"), digest_size=8, person=b"tiertrace").digest()
    value = int.from_bytes(digest, "little")
    return value % dim, 1.0 if value >> 63 else -1.0


class HashingEmbeddingFunction(EmbeddingFunction[Documents]):
    """Hashed unigram + bigram features, L2-normalized; see the module documentation."""

    def __init__(self, dim: int = 384) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
        self.dim = dim

    def __call__(self, input: Documents) -> Embeddings:
        return [self.embed_one(text) for text in input]

    def embed_one(self, text: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The vector of one text."""
        vec = np.zeros(self.dim, dtype=np.float32)
        tokens = _TOKEN.findall(str(text).lower())
        if not tokens:
            tokens = [_EMPTY]
        dim = self.dim
        for token in tokens:
            index, sign = _slot(token, dim)
            vec[index] += sign
        for first, second in pairwise(tokens):
            index, sign = _slot(f"{first} {second}", dim)
            vec[index] += sign * _BIGRAM_WEIGHT
        norm = float(np.linalg.norm(vec))
        if norm > 0.0:
            vec /= norm
        return vec

    @staticmethod
    def name() -> str:
        return "tiertrace_hashing"

    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashingEmbeddingFunction:
        return HashingEmbeddingFunction(dim=int(config.get("dim", 384)))

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        dim = config.get("dim", 384)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(f"tiertrace_hashing: dim must be an integer >= 2, got {dim!r}")

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        if "dim" in new_config and new_config["dim"] != old_config.get("dim", self.dim):
            raise ValueError("tiertrace_hashing: the dimension of a collection cannot change")

    def default_space(self) -> Space:
        return "l2"

    def supported_spaces(self) -> list[Space]:
        return ["l2", "cosine", "ip"]


register_embedding_function(HashingEmbeddingFunction)  # type: ignore[no-untyped-call]
