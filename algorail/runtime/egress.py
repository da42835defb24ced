"""Outbound HTTP to the public internet only (webhooks), safe against SSRF and DNS rebinding.

`PublicAddressBackend` is an httpcore network backend: it resolves a host once, refuses
it when any of its addresses is not globally routable, and opens the TCP connection to
the very address it checked. httpcore still sends the URL's host in the ``Host`` header
and uses it for TLS SNI and certificate checks, since those come from the request, not
from the socket. Nothing resolves the name a second time, so a DNS answer that changes
between the check and the connection (rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore

from algorail.errors import AlgorailError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Not globally routable, whatever `is_global` says on this Python version (its tables
# changed across 3.11.x-3.13): shared address space (carrier-grade NAT; 100.100.100.200 is
# a cloud metadata address), IETF protocol assignments, IPv4-compatible IPv6, local-use
# NAT64, IETF protocol assignments for IPv6, documentation.
NOT_GLOBAL = tuple(ipaddress.ip_network(n) for n in (
    "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "240.0.0.0/4", "::/96", "64:ff9b:1::/48", "2001::/23", "2001:db8::/32",
))
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(AlgorailError):
    """A host that resolves to an address outside the public internet."""


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, 6to4 (2002::/16), Teredo
    (server and client), NAT64 (64:ff9b::/96). Each of them is where a packet ends up."""
    if address.version == 4:
        return []
    found = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in found if a is not None]


def is_public(address: Address) -> bool:
    """True for an address on the public internet, and only then. A NAT64 address is as
    public as the IPv4 address it translates to (`is_reserved` covers all of ::/8)."""
    if address.version == 6 and address in NAT64:
        return all(is_public(inner) for inner in embedded_ipv4(address))
    if (not address.is_global or address.is_multicast or address.is_private
            or address.is_reserved or address.is_loopback or address.is_link_local
            or address.is_unspecified or any(address in net for net in NOT_GLOBAL
                                             if net.version == address.version)):
        return False
    return all(is_public(inner) for inner in embedded_ipv4(address))


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (one `getaddrinfo` call)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    return [info[4][0] for info in infos]


def checked_addresses(host: str, port: int, resolver: Resolver = system_resolver) -> list[str]:
    """The addresses to connect to for `host`, each checked; `AddressRefused` when any is
    not public (one bad answer spoils the name: a client may pick any of them)."""
    literal = host.strip("[]")
    try:
        ipaddress.ip_address(literal)
        answers = [literal]  # an address literal: no lookup
    except ValueError:
        answers = [a.split("%", 1)[0] for a in resolver(host, port)]
    if not answers:
        raise httpcore.ConnectError(f"{host!r} resolves to no address")
    addresses = []
    for answer in answers:
        parsed = ipaddress.ip_address(answer)
        address = getattr(parsed, "ipv4_mapped", None) or parsed
        if not is_public(address):
            where = "" if answer == literal else f"{host} resolves to "
            raise AddressRefused(f"{where}{answer}, which is not a public internet address")
        addresses.append(str(address))
    return list(dict.fromkeys(addresses))


class PublicAddressBackend(httpcore.NetworkBackend):
    """Connects only to checked public addresses; `resolver` and `network` (the backend
    that opens sockets) can be replaced, e.g. in tests."""

    def __init__(self, resolver: Resolver = system_resolver,
                 network: httpcore.NetworkBackend | None = None):
        self.resolver = resolver
        self.network = network or httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in checked_addresses(host, port, self.resolver):
            try:
                return self.network.connect_tcp(address, port, timeout, local_address,
                                                socket_options)
            except httpcore.ConnectError as exc:  # try the next address, as browsers do
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None):
        raise AddressRefused("connections to unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self.network.sleep(seconds)


def connection_pool(*, public_only: bool = True, resolver: Resolver = system_resolver,
                    network: httpcore.NetworkBackend | None = None,
                    ssl_context: Any = None) -> httpcore.ConnectionPool:
    """An httpcore pool for outbound requests; `public_only=False` (dev mode, or a hook
    that allows private URLs) connects anywhere. No proxy from the environment is used
    and redirects are never followed, so the checked address is the one reached."""
    backend = PublicAddressBackend(resolver, network) if public_only else network
    return httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend,
                                   max_connections=100, keepalive_expiry=30.0)
