"""The demo's swap step: quote 10 USDC -> EURC on the Uniswap V2 router, swap it, and show the quote, the minimum,
and the amounts on chain before and after. The quote and the swap ask for the same slippage (SLIPPAGE_BPS), so the
minimum printed with the quote is the one the swap enforces (unless the price moves in between)."""

from __future__ import annotations

import asyncio
import uuid

from paygent.chain.token import balance_of
from paygent.domain.money import format_amount
from paygent.domain.payment import PAYMENT_TERMINAL

SLIPPAGE_BPS = 30


async def swap_and_watch(http, dev, w3, *, amount: str = "10", as_user: str = "alice") -> dict:
    treasury = dev["wallets"]["treasury"]
    usdc = dev["token"]
    eurc = dev["swap"]["tokens"]["EURC"]
    headers = {"Authorization": f"Bearer {dev['users'][as_user]['api_key']}"}
    body = {
        "wallet_id": treasury["id"],
        "from_asset": "USDC",
        "to_asset": "EURC",
        "amount": amount,
        "slippage_bps": SLIPPAGE_BPS,  # quoted and swapped alike: the minimum printed is the one enforced
    }
    print(f"\n==> {as_user} swaps {amount} USDC to EURC from treasury on Uniswap V2 ({dev['swap']['router']})")
    q = (await http.get("/v1/swaps/quote", params=body, headers=headers)).json()
    print(f"    quote:   {q['amount_out']} EURC, minimum {q['min_amount_out']} at {q['slippage_bps']} bps, "
          f"price impact {q['price_impact']}")  # fmt: skip
    before = (
        await balance_of(w3, usdc["address"], treasury["address"]),
        await balance_of(w3, eurc["address"], treasury["address"]),
    )
    r = await http.post("/v1/swaps", json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
    r.raise_for_status()
    sid = r.json()["id"]
    print(f"    started: {r.json()['quote']['text']}")
    view: dict = {}
    for _ in range(480):
        view = (await http.get(f"/v1/swaps/{sid}", headers=headers)).json()
        if view["status"] in PAYMENT_TERMINAL:
            break
        await asyncio.sleep(0.25)
    after = (
        await balance_of(w3, usdc["address"], treasury["address"]),
        await balance_of(w3, eurc["address"], treasury["address"]),
    )
    print(f"    status:  {view['status']} {view.get('failure_reason') or ''}".rstrip())
    print(
        f"    output:  {view.get('amount_out')} EURC (minimum {view.get('min_amount_out')}), gas {view.get('gas_used')}"
    )
    for name, b, a, d in (("USDC", before[0], after[0], 6), ("EURC", before[1], after[1], eurc["decimals"])):
        print(f"    {name} on chain: {format_amount(b, d)} -> {format_amount(a, d)}")
    print(f"    Temporal UI: {view['temporal_ui_url']}")
    if view["status"] != "confirmed":
        raise SystemExit(f"swap ended {view['status']}: {view.get('failure_reason')}")
    return view
