"""Tests of the LLM layer: real SDKs against the local fake provider server, the offline planner, the activity."""
