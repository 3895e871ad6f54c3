"""Tests exempt their own local servers from the egress policy the way an operator would (PAYGENT_EGRESS_ALLOW),
by adding `host:port` to the settings the API and the worker share; the exemption ends with the test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit


def host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@contextlib.contextmanager
def exempt(settings, url: str) -> Iterator[None]:
    entry = host_port(url)
    settings.egress_allow = ",".join(e for e in (settings.egress_allow, entry) if e)
    try:
        yield
    finally:
        kept = [e for e in settings.egress_allow.split(",") if e]
        kept.remove(entry)
        settings.egress_allow = ",".join(kept)
