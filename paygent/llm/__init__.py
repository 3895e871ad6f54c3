"""The LLM layer for agent runs: provider-neutral types, Anthropic/OpenAI adapters, fallback, offline planner.

Workflows import only `paygent.llm.types`; everything else here does I/O and is used from `activities/llm.py`.
"""
