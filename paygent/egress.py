"""Egress policy: where Paygent may send a request on a user's behalf (x402 URLs, webhooks, anything later).

A URL given by a tenant must not reach Paygent's own network: loopback, private ranges, link-local (cloud
metadata at 169.254.169.254), multicast, unspecified, reserved and other non-global addresses are refused,
whatever form the host is written in (`[::1]`, `[::ffff:127.0.0.1]`, `2130706433`, `0x7f000001`, `0177.0.0.1`,
`127.1`: the resolver reads those numeric forms the same way a naive client would, so the checked address is
the one that would have been dialled). Every address a name resolves to must pass, and the connection is then
pinned to the checked address (Host header and TLS SNI keep the name), so a DNS answer cannot change between
the check and the connect. Redirects are not followed by `EgressPolicy.client()`; if a caller ever turns them
on, every hop passes through the same pinned transport and is checked again.

Operators exempt destinations with `PAYGENT_EGRESS_ALLOW` (comma-separated `host:port` or CIDR); `paygent stack
up` exempts its own paid service, and tests exempt their local servers the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import httpx

from paygent.domain.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = {"http": 80, "https": 443}


class EgressRefused(Exception):
    """The destination may not be reached; `reason` says why (safe to show: it names no secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Destination:
    """A checked destination: the URL as given and the address the connection is pinned to."""

    url: httpx.URL
    host: str
    port: int
    ip: IPAddress


def address_refusal(ip: IPAddress) -> str | None:
    """Why Paygent must not connect to `ip` on a user's behalf, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for label, hit in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return f"{'an' if label[0] in 'aeiou' else 'a'} {label} address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


@dataclass(frozen=True)
class _Exemption:
    network: IPNetwork | None = None  # CIDR: any port
    host: str | None = None  # host:port: a name or an address, on that port only
    port: int | None = None

    def covers(self, host: str, port: int, ip: IPAddress) -> bool:
        if self.network is not None:
            return _plain(ip) in self.network or ip in self.network
        return self.port == port and self.host in (host, str(ip), str(_plain(ip)))


def _plain(ip: IPAddress) -> IPAddress:
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip


def parse_exemptions(text: str) -> list[_Exemption]:
    """`10.0.0.0/8, 127.0.0.1:8402, [::1]:9000, hooks.internal:443` -> exemptions; a bad entry raises ValueError."""
    out: list[_Exemption] = []
    for raw in (part.strip() for part in (text or "").split(",")):
        if not raw:
            continue
        if "/" in raw:
            out.append(_Exemption(network=ipaddress.ip_network(raw, strict=False)))
            continue
        host, sep, port = raw.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"egress exemption {raw!r}: use host:port or a CIDR such as 10.0.0.0/8")
        out.append(_Exemption(host=host.strip("[]").lower(), port=int(port)))
    return out


class EgressPolicy:
    """Checks destinations and builds HTTP clients that only connect to checked, pinned addresses."""

    def __init__(self, allow: str = "") -> None:
        self._exemptions = parse_exemptions(allow)

    @classmethod
    def from_settings(cls, settings: Any) -> EgressPolicy:
        """Read at each use, so an exemption added to the settings (by a test fixture) applies at once."""
        return cls(getattr(settings, "egress_allow", "") or "")

    async def check(self, url: str | httpx.URL) -> Destination:
        """Resolve the URL's host; every address must be public or exempted. Raises EgressRefused."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise EgressRefused(f"not a valid URL ({exc})") from None
        if parsed.scheme not in SCHEMES or not parsed.host:
            raise EgressRefused("must be an absolute http(s) URL")
        host, port = parsed.host.lower(), parsed.port or SCHEMES[parsed.scheme]
        addresses = await _resolve(host, port)
        for ip in addresses:
            if any(e.covers(host, port, ip) for e in self._exemptions):
                continue
            reason = address_refusal(ip)
            if reason:
                shown = host if host == str(ip) else f"{host} ({ip})"
                raise EgressRefused(
                    f"{shown} is {reason}; Paygent does not send requests there "
                    "(an operator can exempt it with PAYGENT_EGRESS_ALLOW)"
                )
        return Destination(url=parsed, host=host, port=port, ip=addresses[0])

    def client(self, *, timeout: float | httpx.Timeout = 10.0, keep_alive: bool = False) -> httpx.AsyncClient:
        """An HTTP client that checks and pins every request; no redirects, no proxies from the environment,
        no pooled connection shared between names (a pooled connection is keyed by the pinned address).
        `keep_alive`: connections are kept for reuse; only for a client that talks to ONE origin, ever."""
        limits = httpx.Limits(max_keepalive_connections=8 if keep_alive else 0)
        transport = _PinnedTransport(self, httpx.AsyncHTTPTransport(limits=limits, trust_env=False))
        return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


async def require_allowed(settings: Any, url: str, *, field: str = "url") -> None:
    """At the API: a refused destination is a 422 naming the field, before anything is recorded or started."""
    try:
        await EgressPolicy.from_settings(settings).check(url)
    except EgressRefused as exc:
        raise InvalidInput(field, exc.reason) from None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressRefused(f"{host} does not resolve ({exc})") from None
    seen: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # an IPv4/IPv6 host: a str (typed str | int)
        if ip not in seen:
            seen.append(ip)
    if not seen:
        raise EgressRefused(f"{host} does not resolve")
    return seen


class _PinnedTransport(httpx.AsyncBaseTransport):
    """Checks each request's destination, then connects to the checked address with the original Host/SNI."""

    def __init__(self, policy: EgressPolicy, inner: httpx.AsyncBaseTransport) -> None:
        self._policy, self._inner = policy, inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        dest = await self._policy.check(request.url)
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = dest.host  # TLS still verifies the certificate for the name
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=str(dest.ip)),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()
