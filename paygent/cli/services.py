"""`paygent services`: the tenant's paid-services registry over the HTTP API.

`discover URL` (admins) reads a server's x402 offers (an HTTP resource's 402 answer, or with `--transport mcp`
each paid tool of an MCP server) into the registry with price, asset, network and recipient; offers on another
network or in an asset the policy rules out are refused. `list` shows what agents may pay for."""

from __future__ import annotations

from typing import Annotated

import typer

from paygent.cli.http import ApiKey, ApiUrl, AsUser, call, client

app = typer.Typer(no_args_is_help=True, help="Paid services (x402 resources and paid MCP tools) agents may use.")


def _show(service: dict) -> str:
    where = f"{service['url']} tool {service['tool']}" if service.get("tool") else service["url"]
    return f"{service['name']}: {service['price_text']} on {service['network']} to {service['pay_to']} - {where}"


@app.command()
def discover(
    url: Annotated[str, typer.Argument(help="An x402 resource URL, or an MCP endpoint with --transport mcp")],
    transport: Annotated[str, typer.Option(help="http or mcp")] = "http",
    as_user: AsUser = None,
    api_key: ApiKey = None,
    api_url: ApiUrl = None,
) -> None:
    """Register the server's x402 offers (role: admin). Exit 1 when every offer was refused."""
    with client(as_user, api_key, api_url) as http:
        found = call(http, "POST", "/v1/paid-services/discover", body={"url": url, "transport": transport})
    for service in found["registered"]:
        typer.echo(f"registered {_show(service)}")
    for refused in found["refused"]:
        typer.echo(f"refused {refused['name']}: {refused['reason']}")


@app.command("list")
def list_services(as_user: AsUser = None, api_key: ApiKey = None, api_url: ApiUrl = None) -> None:
    """The paid services agents of your organisation may use."""
    with client(as_user, api_key, api_url) as http:
        items = call(http, "GET", "/v1/paid-services")["items"]
    if not items:
        typer.echo("no paid services registered (an admin adds them with: paygent services discover URL)")
    for service in items:
        typer.echo(_show(service))
