"""Network failures without a network: a machine that cannot resolve names, a port nothing listens on."""

from __future__ import annotations

import socket

import pytest


def go_offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every name lookup fail as on a machine without network; returns the hosts asked for.

    No packet leaves the machine, so tests may name the official URL.
    """
    asked: list[str] = []

    def no_dns(host, *args, **kwargs):
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):  # look up the URL's host itself
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    return asked


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once by the OS's choice, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
