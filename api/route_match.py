"""Which declared routes match a request path: its route template (metrics labels) and allowed methods (405).

FastAPI (0.16x) nests included routers, so `app.routes` holds router groups and the `route` it leaves in the
scope is the router's own (without the prefix); `fastapi.routing.iter_route_contexts` walks the effective
routes with their full paths, which is what a client sees.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Match

UNMATCHED = "<unmatched>"


def _matching(app: FastAPI, scope):
    for ctx in iter_route_contexts(app.router.routes):
        match, _ = ctx.matches(scope)
        if match != Match.NONE:
            yield match, ctx


def route_template(app: FastAPI, scope) -> str:
    """`/v1/payments/{payment_id}` for `/v1/payments/3f...`; UNMATCHED when no route serves the path."""
    partial = None
    for match, ctx in _matching(app, scope):
        if match == Match.FULL:
            return ctx.path_format or ctx.path or UNMATCHED
        partial = partial or ctx.path_format or ctx.path
    return partial or UNMATCHED


def allowed_methods(app: FastAPI, scope) -> list[str]:
    """Every method some route serves at this path (a path is often served by several routes, one a method)."""
    methods: set[str] = set()
    for _, ctx in _matching(app, scope):
        methods |= set(ctx.methods or ())
    return sorted(methods)
