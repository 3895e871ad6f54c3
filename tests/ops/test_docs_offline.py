"""Swagger UI and ReDoc work without internet: every page and asset comes from the app itself."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\burl:\s*'([^']+)'|spec-url="([^"]+)\"""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_and_every_asset_it_references_come_from_the_app(http, page):
    r = await http.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
    html = r.text
    assert "http://" not in html and "https://" not in html, html  # no outside host, not even a font
    references = [next(g for g in m.groups() if g) for m in REFERENCE.finditer(html)]
    assert "/openapi.json" in references
    assert any(ref.endswith(".js") for ref in references), references
    for ref in references:
        assert not urlsplit(ref).netloc, ref
        asset = await http.get(ref)
        assert asset.status_code == 200, f"{ref}: {asset.status_code}"
        assert len(asset.content) > 100, ref
        if ref.endswith(".js"):
            assert "javascript" in asset.headers["content-type"], asset.headers
        if ref.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css"), asset.headers


async def test_swagger_ui_does_not_call_the_online_validator(http):
    assert '"validatorUrl": null' in (await http.get("/docs")).text


async def test_oauth2_redirect_page_is_served(http):
    r = await http.get("/docs/oauth2-redirect")
    assert r.status_code == 200 and "<html" in r.text.lower()
