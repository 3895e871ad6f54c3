"""Memory that agents and people share: scoped JSON items (paygent.memory.store), who may read and write which
scope (paygent.memory.access), key patterns (paygent.memory.scope), texts and embeddings for semantic recall
(paygent.memory.embedding, paygent.memory.recall)."""
