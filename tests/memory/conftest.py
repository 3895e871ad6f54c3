"""Memory tests use the authority tests' principals (one per role, an agent, another tenant) and the fake LLM
server (its /v1/embeddings)."""

from tests.authz.conftest import principals  # noqa: F401  (pytest fixture)
from tests.fakes.llm_server import fake_llm, fake_llm_server  # noqa: F401  (pytest fixtures)
