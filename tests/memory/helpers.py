from __future__ import annotations

import uuid


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def fresh_scope(prefix: str = "t") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def private(prefix: str = "p") -> str:
    return f"private/{prefix}{uuid.uuid4().hex[:10]}"


async def put(http, key: str, scope: str | None, k: str, value, **extra):
    body = {"key": k, "value": value, **extra}
    if scope is not None:
        body["scope"] = scope
    return await http.put("/v1/memory/items", json=body, headers=bearer(key))


async def get(http, key: str, scope: str | None, k: str):
    params = {"key": k} | ({"scope": scope} if scope is not None else {})
    return await http.get("/v1/memory/items", params=params, headers=bearer(key))
