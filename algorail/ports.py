"""TCP ports of algorail's servers: the CLI's port parameter type, and the check that a
port is free, made before a server starts anything else."""

from __future__ import annotations

import errno
import socket

import click

from algorail.errors import AlgorailError


class PortInUse(AlgorailError):
    """A server cannot listen on the port it was given."""


class Port(click.ParamType):
    """A TCP port number, 1-65535; with `off=True` also 0, which turns that server off."""

    name = "port"

    def __init__(self, off: bool = False):
        self.off = off

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            port = value
        else:
            try:
                port = int(str(value).strip(), 10)
            except ValueError:
                self.fail(f"{value!r} is not a port number", param, ctx)
        if not (0 if self.off else 1) <= port <= 65535:
            allowed = "0 (off) or 1-65535" if self.off else "1-65535"
            self.fail(f"{port} is not a TCP port: use {allowed}", param, ctx)
        return port


PORT = Port()
PORT_OR_OFF = Port(off=True)


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    """Raise `PortInUse` naming the port unless a server could listen on host:port now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} on {host} is already in use: stop what listens "
                                f"there or choose another with {option}") from None
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None
