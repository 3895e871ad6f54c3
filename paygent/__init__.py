"""Paygent: a durable control plane for AI agents that spend money.

Layout (imports run one way, top to bottom):
    api/          HTTP layer: validates, authenticates, starts workflows, sends decisions
    workflows/    Temporal workflows: deterministic decisions, no I/O
    activities/   Temporal activities: the I/O (Postgres, chain, LLMs, Redis)
    paygent/domain  pure rules (money, addresses, policies, hashing): no I/O, no Temporal
    paygent/db, paygent/chain  adapters used by activities and the API
"""
