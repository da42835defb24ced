"""Webhooks reach the public internet only: every non-global address form is refused, the
name is resolved once and the connection goes to the address that was checked (no DNS
rebinding), and a redirect cannot lead into the cluster.

The "internet" here is a network backend that records where the guard connects and
carries the bytes to a real server on loopback; the resolver is replaced at the one
boundary the guard owns."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import httpcore
import pytest
from algorail.plugins.hooks import WebhookHook, WebhookRefused
from test_hooks import Target

from algorail.extensions import DeliveryContext
from algorail.runtime.broker import free_port
from algorail.runtime.egress import AddressRefused, checked_addresses, connection_pool

PUBLIC = "93.184.216.34"
CONTEXT = DeliveryContext(run_id="r", deployment="d", owner="o", source="s.out")

REFUSED = [
    "127.0.0.1", "127.8.9.10", "0.0.0.0", "10.1.2.3", "172.16.0.1", "192.168.0.10",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1", "100.100.100.200",  # shared address space (a cloud metadata address)
    "192.0.0.8", "198.18.0.1", "192.0.2.1", "240.0.0.1", "255.255.255.255", "224.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "2002:a00:1::1", "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:6440:1::1",  # 6to4
    "64:ff9b::a00:1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::6464:64c8",  # NAT64
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:a00:1::1",  # Teredo
]
ALLOWED = {PUBLIC: PUBLIC, "2606:4700::1111": "2606:4700::1111",
           f"::ffff:{PUBLIC}": PUBLIC,  # connected as the IPv4 address it maps
           "2002:5db8:d822::1": "2002:5db8:d822::1", "64:ff9b::5db8:d822": "64:ff9b::5db8:d822"}


class Internet(httpcore.NetworkBackend):
    """Records each (address, port) the guard connects to and carries the connection to
    the server listening on that port on loopback."""

    def __init__(self):
        self.connects: list[tuple[str, int]] = []
        self.local = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connects.append((host, port))
        return self.local.connect_tcp("127.0.0.1", port, timeout, local_address,
                                      socket_options)


class Rebinding:
    """A resolver whose answers change from one lookup to the next."""

    def __init__(self, *answers: str):
        self.answers, self.lookups = list(answers), []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return [self.answers[min(len(self.lookups), len(self.answers)) - 1]]


@pytest.mark.parametrize("address", REFUSED)
def test_every_non_global_address_form_is_refused(address):
    with pytest.raises(AddressRefused, match="not a public internet address"):
        checked_addresses(address, 80)
    with pytest.raises(AddressRefused, match=f"hooks.example resolves to {address}"):
        checked_addresses("hooks.example", 80, lambda host, port: [PUBLIC, address])


def test_public_addresses_pass_and_mapped_ones_connect_as_ipv4():
    for address, connected in ALLOWED.items():
        assert checked_addresses(address, 80) == [connected]
    assert checked_addresses("hooks.example", 443, lambda h, p: [PUBLIC, f"::ffff:{PUBLIC}"]) \
        == [PUBLIC]


def test_a_refused_url_is_final_and_reaches_nothing():
    target = Target(free_port())
    target.start()
    try:
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]", "[2002:7f00:1::1]", "hooks.example"):
            hook = SimpleNamespace(name="h", config={
                "urls": [f"http://{host}:{target.port}/"]})
            webhook = WebhookHook(resolver=lambda h, p: ["127.0.0.1"], network=Internet())
            with pytest.raises(WebhookRefused, match="not a public internet address"):
                webhook.deliver(hook, {"x": 1}, CONTEXT)
        assert target.received == []
    finally:
        target.stop()


def test_the_checked_address_is_the_one_connected_even_when_dns_rebinds():
    target = Target(free_port())
    target.start()
    try:
        hook = SimpleNamespace(name="h", config={"urls": [f"http://hooks.example:{target.port}/"]})
        resolver, internet = Rebinding(PUBLIC, "127.0.0.1"), Internet()
        assert WebhookHook(resolver=resolver, network=internet).deliver(
            hook, {"x": 1}, CONTEXT)["delivered"][0]["status"] == 204
        assert resolver.lookups == ["hooks.example"]  # resolved once, not again to connect
        assert internet.connects == [(PUBLIC, target.port)]
        [(headers, _)] = target.received
        assert headers["Host"] == f"hooks.example:{target.port}"
        # the next lookup answers 127.0.0.1: refused, nothing connected
        with pytest.raises(WebhookRefused, match="resolves to 127.0.0.1"):
            WebhookHook(resolver=resolver, network=internet).deliver(hook, {"x": 2}, CONTEXT)
        assert internet.connects == [(PUBLIC, target.port)] and len(target.received) == 1
    finally:
        target.stop()


def test_a_redirect_into_the_cluster_is_refused():
    inside = Target(free_port())
    inside.start()
    port = free_port()

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{inside.port}/admin")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = SimpleNamespace(name="h", config={"urls": [f"http://hooks.example:{port}/"]})
        webhook = WebhookHook(resolver=lambda h, p: [PUBLIC], network=Internet())
        with pytest.raises(WebhookRefused, match="307 .redirects are not followed"):
            webhook.deliver(hook, {"x": 1}, CONTEXT)
        assert inside.received == []
    finally:
        server.shutdown()
        server.server_close()
        inside.stop()


def test_tls_checks_the_hostname_while_connecting_to_the_checked_address():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.example").configure_cert(server_context)
    seen_sni = []
    server_context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    port = free_port()

    class Ok(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Ok)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    internet = Internet()
    try:
        pool = connection_pool(resolver=lambda h, p: [PUBLIC], network=internet,
                               ssl_context=client_context)
        response = pool.request("POST", f"https://hooks.example:{port}/", content=b"{}")
        assert response.status == 204 and seen_sni == ["hooks.example"]
        assert internet.connects == [(PUBLIC, port)]
        other = connection_pool(resolver=lambda h, p: [PUBLIC], network=internet,
                                ssl_context=client_context)
        with pytest.raises(httpcore.ConnectError, match="hostname|match"):
            other.request("POST", f"https://not-the-cert.example:{port}/", content=b"{}")
    finally:
        server.shutdown()
        server.server_close()
