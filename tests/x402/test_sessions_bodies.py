"""What a paid request in a session returns: text, bytes (base64), and answers over 1 MiB (refused before paying
when the server declares the size; paid but not returned when it does not)."""

from __future__ import annotations

import base64

from paygent.x402.paid_service import PNG_BYTES
from tests.api.helpers import token_balance
from tests.x402.sessions import fetch, session_body, start, status


async def test_binary_answers_come_base64_and_oversized_ones_are_refused(http, dev, paid_service, app_settings):
    sid = (await start(http, dev, session_body(dev, paid_service.url))).json()["id"]

    image = await fetch(http, dev, sid, f"{paid_service.url}/image")
    assert image.status_code == 200, image.text
    assert image.json()["body_encoding"] == "base64" and base64.b64decode(image.json()["body"]) == PNG_BYTES
    assert image.json()["headers"]["content-type"] == "image/png"

    declared = await fetch(http, dev, sid, f"{paid_service.url}/large")  # declared in its 402: nothing is paid
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large", declared.text
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 10_000

    undeclared = await fetch(http, dev, sid, f"{paid_service.url}/large-undeclared")  # known only once paid
    assert undeclared.status_code == 413, undeclared.text
    assert undeclared.json()["error"]["code"] == "body_too_large" and undeclared.json()["body"] is None
    assert undeclared.json()["paid"]["amount"] == "0.01"
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, paid_service.pay_to) == 20_000

    seen = await status(http, dev, sid)
    assert seen["spent"] == "0.02" and len(seen["requests"]) == 2
