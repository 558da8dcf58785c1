"""Replay never touches the network: real connections are refused while a cassette replays.

vcrpy answers the HTTP clients it patches (httpx, httpx2, requests/urllib3) from the cassette
without opening a connection. A raw socket, or a client vcrpy does not know, would still reach
the network. While a guard is active, ``connect`` on internet sockets and name resolution of
hosts other than the allowed ones raise :class:`NetworkBlocked`: an offline replay then fails
with the cause named, not with a DNS error or a hang on a firewalled port.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .._errors import CompactionError

_INET = (socket.AF_INET, socket.AF_INET6)


class NetworkBlocked(CompactionError, ConnectionRefusedError):
    """A real connection (or DNS lookup) attempted while a cassette replays.

    Also a ``ConnectionRefusedError``, so clients close their socket and report a failed
    connection instead of leaking it.
    """


@dataclass(eq=False)
class _Guard:
    hosts: frozenset[str]  # allowed names and IP literals, lowercased
    reason: str
    ips: set[str] = field(default_factory=set)  # what the allowed names resolved to
    refused: list[str] = field(default_factory=list)  # what this guard stopped, in order

    def permits(self, host: str) -> bool:
        host = host.lower().strip("[]").split("%", 1)[0]
        return host in self.hosts or host in self.ips


_lock = threading.Lock()
_active: list[_Guard] = []
_originals: dict[str, Any] = {}
# Set while socket.socketpair runs: on Windows it is built from a loopback connection, and
# asyncio makes one for every event loop.
_local = threading.local()


def _host_of(address: Any) -> str | None:
    if isinstance(address, tuple) and address:
        host = address[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        return str(host)
    return None


def _refuse(what: str) -> NetworkBlocked:
    for guard in _active:
        guard.refused.append(what)
    reasons = sorted({guard.reason for guard in _active})
    return NetworkBlocked(
        f"compaction: {what} was blocked: {'; '.join(reasons)}. A replay never touches the "
        "network; record the cassette first, or list the host in ignore_hosts "
        "(ignore_localhost for 127.0.0.1) to let it through."
    )


def _check_address(sock: socket.socket, address: Any) -> None:
    guards = list(_active)
    if not guards or sock.family not in _INET or getattr(_local, "pairing", False):
        return
    host = _host_of(address)
    if host is None or all(guard.permits(host) for guard in guards):
        return
    port = address[1] if isinstance(address, tuple) and len(address) > 1 else "?"
    raise _refuse(f"a connection to {host}:{port}")


def _is_local_name(host: str) -> bool:
    """No DNS query: empty, an IP literal, or localhost."""
    if not host or host.lower() in ("localhost", "localhost.", "localhost.localdomain"):
        return True
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(self, address)
    _originals["connect"](self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(self, address)
    result: int = _originals["connect_ex"](self, address)
    return result


def _guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
    if args:
        _check_address(self, args[-1])
    result: int = _originals["sendto"](self, data, *args)
    return result


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    guards = list(_active)
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    name = "" if name is None else str(name)
    if guards and not _is_local_name(name) and not all(g.permits(name) for g in guards):
        raise _refuse(f"a DNS lookup of {name!r}")
    result = _originals["getaddrinfo"](host, *args, **kwargs)
    if guards and name:
        # Connections to an allowed name arrive as connections to these addresses.
        resolved = {str(entry[4][0]).lower() for entry in result if entry[4]}
        for guard in guards:
            if guard.permits(name):
                guard.ips.update(resolved)
    return result


def _guarded_socketpair(*args: Any, **kwargs: Any) -> Any:
    _local.pairing = True
    try:
        return _originals["socketpair"](*args, **kwargs)
    finally:
        _local.pairing = False


_PATCHES: dict[str, tuple[Any, Callable[..., Any]]] = {
    "connect": (socket.socket, _guarded_connect),
    "connect_ex": (socket.socket, _guarded_connect_ex),
    "sendto": (socket.socket, _guarded_sendto),
    "getaddrinfo": (socket, _guarded_getaddrinfo),
    "socketpair": (socket, _guarded_socketpair),
}


def _install() -> None:
    for name, (owner, replacement) in _PATCHES.items():
        _originals[name] = getattr(owner, name)
        _originals[f"own {name}"] = name in vars(owner)
        setattr(owner, name, replacement)


def _uninstall() -> None:
    for name, (owner, _) in _PATCHES.items():
        original = _originals.pop(name)
        if _originals.pop(f"own {name}"):
            setattr(owner, name, original)
        else:  # inherited (socket.socket.connect comes from _socket.socket)
            delattr(owner, name)


@contextmanager
def block_network(allowed_hosts: Iterable[str] = (), *, reason: str) -> Iterator[list[str]]:
    """Refuse real connections in every thread until the block ends.

    ``allowed_hosts`` (names or IP literals) stay reachable; ``reason`` says why in the error.
    Guards nest: a connection must be allowed by every active guard. Yields the list of what
    was refused (``"a connection to host:port"``, ``"a DNS lookup of name"``), in order.
    """
    guard = _Guard(frozenset(h.lower().strip("[]") for h in allowed_hosts), reason)
    with _lock:
        if not _active:
            _install()
        _active.append(guard)
    try:
        yield guard.refused
    finally:
        with _lock:
            del _active[next(i for i, g in enumerate(_active) if g is guard)]
            if not _active:
                _uninstall()


def is_blocking() -> bool:
    """Whether a guard is active."""
    return bool(_active)


@contextmanager
def replay_guard(
    record_mode: str, allowed_hosts: Iterable[str], cassette: object
) -> Iterator[None]:
    """The guard a cassette in ``record_mode`` needs: blocking in ``none``, nothing otherwise."""
    if record_mode != "none":
        yield
        return
    reason = f"cassette {cassette} is replaying (record mode 'none')"
    with block_network(allowed_hosts, reason=reason):
        yield
