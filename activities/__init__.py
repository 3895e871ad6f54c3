"""Temporal activities: all I/O (Postgres, chain, LLMs, Redis). Workflows never import these."""
