"""Text -> 384 numbers, and which model made them.

- With an OpenAI key: `text-embedding-3-small` asked for 384 dimensions, through the official SDK (its base URL
  from settings, the operator's choice like the LLM providers'; SDK retries off).
- Without one: `local-ngram-384`, a deterministic lexical embedding: the text's character trigrams (of each
  lower-cased word with its boundaries) hashed into 384 signed buckets, then normalised. It finds texts that
  share words and word parts with the query; it knows nothing of meaning (synonyms, paraphrases with other words).

Vectors are stored with their model's name and only ever compared with vectors of the same model.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

DIMENSIONS = 384
LOCAL_MODEL = "local-ngram-384"
OPENAI_MODEL = "text-embedding-3-small"
_WORD = re.compile(r"\w+", re.UNICODE)


def local_embedding(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in _WORD.findall(text.lower()):
        padded = f"^{word}$"
        grams = [padded[i : i + 3] for i in range(max(1, len(padded) - 2))]
        for gram in grams:
            digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "big") % DIMENSIONS
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    return normalise(vector)


def normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


@dataclass(frozen=True)
class Embedder:
    """Which model embeds, and how to reach it."""

    model: str
    api_key: str | None = None
    base_url: str | None = None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if self.model == LOCAL_MODEL:
            return [local_embedding(t) for t in texts]
        import openai  # the operator's configured endpoint, like the LLM providers (paygent/llm/)

        async with openai.AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0) as client:
            answer = await client.embeddings.create(model=self.model, input=texts, dimensions=DIMENSIONS)
        vectors = [normalise(list(item.embedding)) for item in sorted(answer.data, key=lambda d: d.index)]
        if any(len(v) != DIMENSIONS for v in vectors):
            raise ValueError(f"{self.model} answered vectors that are not {DIMENSIONS}-dimensional")
        return vectors


def embedder_from_settings(settings) -> Embedder:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if key:
        return Embedder(OPENAI_MODEL, api_key=key, base_url=settings.openai_base_url)
    return Embedder(LOCAL_MODEL)
