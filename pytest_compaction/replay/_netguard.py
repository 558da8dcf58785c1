"""Replay never touches the network: real connections are refused while a cassette replays.

vcrpy answers the HTTP clients it patches (httpx, httpx2, requests/urllib3) from the cassette
without opening a connection. A raw socket, a client vcrpy does not know, or a connection opened
before the replay began would still reach the network. While a guard is active, in every
thread, :class:`NetworkBlocked` is raised for

- connections and datagrams (``connect``, ``connect_ex``, ``sendto``, ``sendmsg``) to hosts
  other than the allowed ones;
- sends over a connection opened before the guard (``send``, ``sendall``, ``sendmsg``,
  ``sendfile``, and ``ssl.SSLSocket.send``/``write``, which ``SSLSocket.sendall`` goes through)
  when its peer is not allowed;
- DNS lookups (``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``) of names other than
  the allowed ones, localhost and IP literals, and reverse lookups (``gethostbyaddr``,
  ``getnameinfo`` without ``NI_NUMERICHOST``) of addresses that are neither allowed nor
  loopback.

An offline replay then fails with the cause named, not with a DNS error or a hang on a
firewalled port. Two layers do it. The methods of ``socket.socket`` and ``ssl.SSLSocket`` and
the module's lookup functions are patched while a guard is active: they refuse before any
implicit name resolution (``connect(("host", 443))`` resolves inside C) and see the sends,
which raise no audit event. An audit hook (``sys.addaudithook``; installed the first time a
guard starts, a no-op while none is active, since a hook cannot be removed) refuses the
``socket.*`` events CPython raises from C, so sockets made from ``_socket.socket`` and lookups
through ``_socket`` are refused too.

:func:`passage` opens the guards for one host while verify calls the live service.

Each refusal is also passed to the guard's ``report`` as it happens, so a replay fails even
when the code under test catches the error and carries on (a client falling back to a cache).
Not seen: sends over a connection a bare ``_socket.socket`` opened before the guard, writes to
a socket's file descriptor (``os.write``), and sockets driven outside Python (C extensions,
uvloop, the Windows proactor).
"""

from __future__ import annotations

import _socket
import ipaddress
import socket
import ssl
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .._errors import CompactionError

_INET = (socket.AF_INET, socket.AF_INET6)
_LOCALHOST = frozenset({"localhost", "localhost.", "localhost.localdomain"})


class NetworkBlocked(CompactionError, ConnectionRefusedError):
    """A real connection (or DNS lookup) attempted while a cassette replays.

    Also a ``ConnectionRefusedError``, so clients close their socket and report a failed
    connection instead of leaking it.
    """


def _normal(host: str) -> str:
    """A host as the guard compares it: lowercased, no brackets or zone, IPv4-mapped unwrapped."""
    host = host.lower().strip("[]").split("%", 1)[0]
    if host.startswith("::ffff:"):
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        if mapped is not None:
            return str(mapped)
    return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(_normal(host))
    except ValueError:
        return False
    return True


@dataclass(eq=False)
class _Guard:
    hosts: frozenset[str]  # allowed names and IP literals, normalized
    reason: str
    report: Callable[[str], None] | None = None
    ips: set[str] = field(default_factory=set)  # what the allowed names resolved to
    refused: list[str] = field(default_factory=list)  # what this guard stopped, in order
    resolved: bool = False  # whether the allowed names were looked up for a peer address

    def permits(self, host: str) -> bool:
        host = _normal(host)
        return host in self.hosts or host in self.ips

    def permits_address(self, host: str) -> bool:
        """Whether ``host`` is allowed as the far end of a connection.

        A connection opened before the guard reached an allowed name's address without the
        guard seeing the lookup: on a first miss the allowed names are resolved once (they may
        be looked up; that is what allowing them means).
        """
        if self.permits(host):
            return True
        if self.resolved:
            return False
        self.resolved = True
        names = [h for h in self.hosts if not _is_ip(h)]
        if not names:
            return False
        _local.resolving = True
        try:
            for name in names:
                try:
                    entries = _socket.getaddrinfo(name, None)
                except OSError:
                    continue
                self.ips.update(_normal(str(entry[4][0])) for entry in entries if entry[4])
        finally:
            _local.resolving = False
        return self.permits(host)


_lock = threading.Lock()
_active: list[_Guard] = []
_originals: dict[tuple[Any, str], tuple[Any, bool]] = {}
_hooked = False
# Per thread: socketpair is running (on Windows it is built from a loopback connection, and
# asyncio makes one for every event loop), getnameinfo was asked for a numeric host, or a guard
# is resolving its own allowed names.
_local = threading.local()
# Sockets socketpair made: their loopback peer is this process.
_paired: weakref.WeakSet[Any] = weakref.WeakSet()
# Hosts a passage lets through while it lasts (see :func:`passage`).
_passages: set[str] = set()


def _host_of(address: Any) -> str | None:
    if isinstance(address, tuple) and address:
        host = address[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        return str(host)
    return None


def _name_of(host: Any) -> str:
    if isinstance(host, bytes):
        return host.decode("ascii", "replace")
    return "" if host is None else str(host)


def _refuse(what: str) -> NetworkBlocked:
    guards = list(_active)
    for guard in guards:
        guard.refused.append(what)
    for guard in guards:
        if guard.report is not None:
            guard.report(what)
    reasons = sorted({guard.reason for guard in guards})
    return NetworkBlocked(
        f"compaction: {what} was blocked: {'; '.join(reasons)}. A replay never touches the "
        "network; record the cassette first, or list the host in ignore_hosts "
        "(ignore_localhost for 127.0.0.1) to let it through."
    )


def _in_passage(host: str) -> bool:
    """Whether a :func:`passage` is open for ``host`` (or an address it resolved to)."""
    return bool(_passages) and _normal(host) in _passages


def _check_address(sock: Any, address: Any) -> None:
    guards = list(_active)
    if not guards or sock.family not in _INET or getattr(_local, "pairing", False):
        return
    host = _host_of(address)
    if host is None or _in_passage(host) or all(g.permits_address(host) for g in guards):
        return
    port = address[1] if isinstance(address, tuple) and len(address) > 1 else "?"
    raise _refuse(f"a connection to {host}:{port}")


def _check_peer(sock: Any) -> None:
    """Refuse a send over a connection whose far end no guard allowed (it predates the guard)."""
    guards = list(_active)
    if not guards or sock.family not in _INET or sock in _paired:
        return
    try:
        peer = sock.getpeername()
    except OSError:
        return  # not connected: the send fails on its own
    host = _host_of(peer)
    if host is None or _in_passage(host) or all(g.permits_address(host) for g in guards):
        return
    raise _refuse(f"a send to {host}:{peer[1]} over a connection opened earlier")


def _is_local_name(host: str) -> bool:
    """No DNS query: empty, an IP literal, or localhost."""
    return not host or host.lower() in _LOCALHOST or _is_ip(host)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOCALHOST:
        return True
    try:
        return ipaddress.ip_address(_normal(host)).is_loopback
    except ValueError:
        return False


def _check_lookup(host: Any) -> None:
    guards = list(_active)
    name = _name_of(host)
    if not guards or getattr(_local, "resolving", False) or _is_local_name(name):
        return
    if not _in_passage(name) and not all(guard.permits(name) for guard in guards):
        raise _refuse(f"a DNS lookup of {name!r}")


def _check_reverse(host: Any) -> None:
    guards = list(_active)
    name = _name_of(host)
    if not guards or not name or _is_loopback(name):
        return
    if not all(guard.permits_address(name) for guard in guards):
        raise _refuse(f"a reverse DNS lookup of {name!r}")


def _learn(name: Any, addresses: Iterable[Any]) -> None:
    """Connections to an allowed name arrive as connections to the addresses it resolved to."""
    name = _name_of(name)
    if name and _in_passage(name):
        _passages.update(_normal(str(address)) for address in addresses)
    guards = [guard for guard in _active if name and guard.permits(name)]
    if guards:
        resolved = {_normal(str(address)) for address in addresses}
        for guard in guards:
            guard.ips.update(resolved)


# -- the audit hook: the socket events CPython raises from C ---------------------------------


def _audit_sendmsg(sock: Any, address: Any) -> None:
    if address is None:
        _check_peer(sock)
    else:
        _check_address(sock, address)


def _audit_getnameinfo(sockaddr: Any) -> None:
    if not getattr(_local, "numeric", False):
        _check_reverse(_host_of(sockaddr))


# Event names and argument shapes as CPython 3.11 to 3.13 raise them ("Audit events table").
_AUDITED: dict[str, Callable[..., None]] = {
    "socket.connect": _check_address,  # (socket, address), connect and connect_ex
    "socket.sendto": _check_address,  # (socket, address)
    "socket.sendmsg": _audit_sendmsg,  # (socket, address or None)
    "socket.getaddrinfo": lambda host, *_: _check_lookup(host),  # (host, port, family, ...)
    "socket.gethostbyname": _check_lookup,  # (hostname), gethostbyname and gethostbyname_ex
    "socket.gethostbyaddr": _check_reverse,  # (ip_address)
    "socket.getnameinfo": _audit_getnameinfo,  # (sockaddr)
}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audited event of the process, for good: stays cheap while no guard is.
    if not _active:
        return
    check = _AUDITED.get(event)
    if check is not None:
        check(*args)


# -- the patches: before the C call, and the sends that raise no event ----------------------


def _wrap_connect(original: Any) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        _check_address(self, address)
        return original(self, address)

    return connect


def _wrap_sendto(original: Any) -> Callable[..., Any]:
    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        if args:
            _check_address(self, args[-1])
        return original(self, data, *args)

    return sendto


def _wrap_sendmsg(original: Any) -> Callable[..., Any]:
    def sendmsg(self: socket.socket, buffers: Any, *args: Any) -> Any:
        _audit_sendmsg(self, args[2] if len(args) > 2 else None)
        return original(self, buffers, *args)

    return sendmsg


def _wrap_send(original: Any) -> Callable[..., Any]:
    def send(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        _check_peer(self)
        return original(self, *args, **kwargs)

    return send


def _wrap_lookup(
    addresses: Callable[[Any], Iterable[Any]],
) -> Callable[[Any], Callable[..., Any]]:
    """A lookup function checked before it runs; ``addresses`` reads its result."""

    def wrap(original: Any) -> Callable[..., Any]:
        def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
            _check_lookup(host)
            result = original(host, *args, **kwargs)
            _learn(host, addresses(result))
            return result

        return lookup

    return wrap


def _wrap_getnameinfo(original: Any) -> Callable[..., Any]:
    # The audit event does not carry the flags: a numeric host is no query.
    def getnameinfo(sockaddr: Any, flags: int) -> Any:
        _local.numeric = bool(flags & socket.NI_NUMERICHOST)
        try:
            return original(sockaddr, flags)
        finally:
            _local.numeric = False

    return getnameinfo


def _wrap_socketpair(original: Any) -> Callable[..., Any]:
    def socketpair(*args: Any, **kwargs: Any) -> Any:
        _local.pairing = True
        try:
            pair = original(*args, **kwargs)
        finally:
            _local.pairing = False
        _paired.update(pair)
        return pair

    return socketpair


_PATCHES: tuple[tuple[Any, str, Callable[[Any], Callable[..., Any]]], ...] = (
    (socket.socket, "connect", _wrap_connect),
    (socket.socket, "connect_ex", _wrap_connect),
    (socket.socket, "sendto", _wrap_sendto),
    (socket.socket, "sendmsg", _wrap_sendmsg),
    (socket.socket, "send", _wrap_send),
    (socket.socket, "sendall", _wrap_send),
    (socket.socket, "sendfile", _wrap_send),
    # SSLSocket.sendall and sendfile write through self.send; write is the older spelling.
    (ssl.SSLSocket, "send", _wrap_send),
    (ssl.SSLSocket, "write", _wrap_send),
    (socket, "getaddrinfo", _wrap_lookup(lambda found: (e[4][0] for e in found if e[4]))),
    (socket, "gethostbyname", _wrap_lookup(lambda address: (address,))),
    (socket, "gethostbyname_ex", _wrap_lookup(lambda found: found[2])),  # (name, aliases, ips)
    (socket, "getnameinfo", _wrap_getnameinfo),
    (socket, "socketpair", _wrap_socketpair),
)


def _install() -> None:
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    for owner, name, wrap in _PATCHES:
        original = getattr(owner, name)
        _originals[owner, name] = (original, name in vars(owner))
        setattr(owner, name, wrap(original))


def _uninstall() -> None:
    for owner, name, _ in _PATCHES:
        original, own = _originals.pop((owner, name))
        if own:
            setattr(owner, name, original)
        else:  # inherited (socket.socket.connect comes from _socket.socket)
            delattr(owner, name)


@contextmanager
def block_network(
    allowed_hosts: Iterable[str] = (),
    *,
    reason: str,
    report: Callable[[str], None] | None = None,
) -> Iterator[list[str]]:
    """Refuse real connections in every thread until the block ends.

    ``allowed_hosts`` (names or IP literals) stay reachable; ``reason`` says why in the error.
    Guards nest: a connection must be allowed by every active guard. Yields the list of what
    was refused (``"a connection to host:port"``, ``"a DNS lookup of name"``), in order;
    ``report``, if given, is called with each of them as it is refused.
    """
    guard = _Guard(frozenset(_normal(h) for h in allowed_hosts), reason, report)
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


@contextmanager
def passage(host: str) -> Iterator[None]:
    """Let connections to ``host`` through every active guard for the length of the block.

    The one opening a replay has: ``verify`` sends a replayed request to the live service while
    the cassette replays. Only that host (and the addresses it resolves to in the block) is let
    through, in every thread while the call lasts: a service in this process answers from a
    thread of its own. Other hosts stay refused.
    """
    with _lock:
        before = set(_passages)
        _passages.add(_normal(host))
    try:
        yield
    finally:
        with _lock:
            _passages.intersection_update(before)


def is_blocking() -> bool:
    """Whether a guard is active."""
    return bool(_active)


def _refusal_problem(what: str, cassette: object) -> str:
    """The failure of a replay that tried to reach the network, whatever the code did next."""
    return (
        f"compaction: {what} was refused while cassette {cassette} replayed (record mode "
        "'none'); the test fails even when the code caught the error and carried on. A replay "
        "never touches the network: record the cassette (record mode 'once' or "
        "'new_episodes'), or list the host in ignore_hosts (ignore_localhost for 127.0.0.1) "
        "to let it through."
    )


@contextmanager
def replay_guard(
    record_mode: str,
    allowed_hosts: Iterable[str],
    cassette: object,
    report: Callable[[str], None] | None = None,
) -> Iterator[list[str]]:
    """The guard a cassette in ``record_mode`` needs: blocking in ``none``, nothing otherwise.

    Yields what was refused. ``report`` receives a problem for each refusal as it happens
    (:func:`_refusal_problem`), so a refusal the code swallows still fails the replay.
    """
    if record_mode != "none":
        yield []
        return
    reason = f"cassette {cassette} is replaying (record mode 'none')"

    def problem(what: str) -> None:
        if report is not None:
            report(_refusal_problem(what, cassette))

    with block_network(allowed_hosts, reason=reason, report=problem) as refused:
        yield refused
