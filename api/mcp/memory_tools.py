"""MCP tools over shared memory: `memorize` and `recall_similar` (semantic), `memory_put`, `memory_get` and
`memory_search` (scoped JSON items). They follow the same scope rules as /v1/memory (paygent.memory.access):
your private scope by default, shared scopes by grant. `remember` and `recall` (api/mcp/server.py) keep their
key-value meaning over your private scope."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from api.mcp import schemas as o
from api.mcp.access import APPENDS, READ, STORES, ToolAccess
from api.mcp.caller import caller
from api.memory_service import place_for, store_for
from paygent.domain.text import SafeText
from paygent.memory.access import Access
from paygent.memory.recall import MAX_K, recall
from paygent.memory.scope import compile_pattern
from paygent.memory.store import PAGE_MAX, Unavailable, VersionConflict

ScopeArg = Annotated[
    SafeText | None,
    Field(None, max_length=600, description="a/b for a shared scope (needs a grant); omit for your private scope"),
]


def register(tools: ToolAccess) -> None:
    """Register the memory tools, with their hints and output schemas, on the server `tools` is bound to."""

    @tools.tool(
        APPENDS,
        description="Store a text (a fact, a note) for semantic recall later, with optional JSON metadata.",
    )
    async def memorize(
        ctx: Context,
        text: Annotated[SafeText, Field(min_length=1, max_length=8000)],
        metadata: dict[str, Any] | None = None,
        scope: ScopeArg = None,
    ) -> o.Memorized:
        d, who = caller(ctx)
        place = await place_for(d, who, scope, Access.write)
        return o.Memorized.model_validate(await store_for(d).memorize(place, text, metadata or {}))

    @tools.tool(
        READ,
        description="The k stored texts nearest in meaning to `query` (texts from memorize and text values from "
        "memory_put), best first, each with a score; `filter` keeps texts whose metadata holds those fields.",
    )
    async def recall_similar(
        ctx: Context,
        query: Annotated[SafeText, Field(min_length=1, max_length=8000)],
        k: Annotated[int, Field(5, ge=1, le=MAX_K)] = 5,
        filter: dict[str, Any] | None = None,
        scope: ScopeArg = None,
    ) -> o.TextRecall:
        d, who = caller(ctx)
        place = await place_for(d, who, scope, Access.read)
        return o.TextRecall.model_validate(await recall(store_for(d), place, query, k, filter))

    @tools.tool(
        STORES,
        description="Store a JSON value under a key; `if_version` makes it compare-and-set (0: only if the key is "
        "new) so agents sharing a scope never lose an update; a conflict answers the current version.",
    )
    async def memory_put(
        ctx: Context,
        key: Annotated[SafeText, Field(max_length=200)],
        value: Any,
        scope: ScopeArg = None,
        ttl_seconds: Annotated[int | None, Field(None, ge=1, le=366 * 86400)] = None,
        partition: Annotated[SafeText, Field("", max_length=64)] = "",
        if_version: Annotated[int | None, Field(None, ge=0, le=2**63 - 1)] = None,
    ) -> o.MemoryWritten:
        d, who = caller(ctx)
        place = await place_for(d, who, scope, Access.write)
        try:
            written = await store_for(d).put(
                place, key, value, ttl_seconds=ttl_seconds, partition=partition, if_version=if_version, actor=who.actor
            )
        except (VersionConflict, Unavailable) as exc:
            raise ToolError(str(exc)) from None
        return o.MemoryWritten.model_validate(written)

    @tools.tool(
        READ,
        description="The JSON value under a key, with its version (null when nothing is stored or it expired).",
    )
    async def memory_get(
        ctx: Context, key: Annotated[SafeText, Field(max_length=200)], scope: ScopeArg = None
    ) -> o.MemoryValue:
        d, who = caller(ctx)
        place = await place_for(d, who, scope, Access.read)
        item = await store_for(d).get(place, key)
        return o.MemoryValue.model_validate(
            item or {"scope": place.written, "key": key, "value": None, "version": None}
        )

    @tools.tool(
        READ,
        description="Keys matching a pattern (`orders/*/status`: * stays within one part, ** crosses '/'), "
        "newest first; `where` keeps values holding those JSON fields; pass next_cursor back for more.",
    )
    async def memory_search(
        ctx: Context,
        pattern: Annotated[SafeText | None, Field(None, max_length=200)] = None,
        where: dict[str, Any] | None = None,
        scope: ScopeArg = None,
        limit: Annotated[int, Field(50, ge=1, le=PAGE_MAX)] = 50,
        cursor: Annotated[SafeText | None, Field(None, max_length=1000)] = None,
    ) -> o.MemoryPage:
        d, who = caller(ctx)
        place = await place_for(d, who, scope, Access.read)
        compiled = compile_pattern(pattern) if pattern else None
        return o.MemoryPage.model_validate(
            await store_for(d).search(place, pattern=compiled, where=where, limit=limit, cursor=cursor)
        )
