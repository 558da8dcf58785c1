"""Living beside pytest-recording: its ``vcr`` marker and its ``--block-network``.

A test marked ``compaction`` records every HTTP exchange it makes into its own cassette and
validates the compaction ones. Two things of pytest-recording would stand in its way:

- a ``vcr`` marker on the same test (or its module) installs a second vcrpy cassette; the
  cassette entered last gets the traffic. The ``compaction`` cassette is entered after it, so
  every exchange is recorded and validated here, and a warning says the other one stays unused;
- ``--block-network`` (or the ``block_network`` marker) blocks sockets in every test except
  pytest-recording's own recording ones. While a ``compaction`` test records, the block is
  lifted for that test only, as pytest-recording does for its ``vcr`` tests; it is put back
  as it was when the test's cassette closes. Replay never needs the network, and blocks it
  on its own; under ``--compaction-verify`` the block is lifted as for recording, and the
  replay's own guard lets through only the live calls of verify.

Nothing here imports pytest-recording unless it is installed and its fixtures are in play.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def _uses(request: pytest.FixtureRequest, name: str) -> bool:
    return name in getattr(request, "fixturenames", ())


def enter_vcr_first(request: pytest.FixtureRequest, cassette: str) -> None:
    """Set up pytest-recording's cassette (when the test has one) before the compaction one,
    and say that it stays unused."""
    if not _uses(request, "vcr") or request.node.get_closest_marker("vcr") is None:
        return
    request.getfixturevalue("vcr")
    request.node.warn(
        pytest.PytestWarning(
            f"{request.node.nodeid} is marked both vcr (pytest-recording) and compaction: "
            f"every HTTP exchange of the test is recorded in {cassette} and the compaction ones "
            "validated there; pytest-recording's cassette stays unused. Remove "
            "@pytest.mark.vcr from this test (or from its module's pytestmark)."
        )
    )


@contextmanager
def network_for_recording(
    request: pytest.FixtureRequest, record_mode: str, *, live: bool = False
) -> Iterator[None]:
    """Lift pytest-recording's network block while this test records, or verifies (``live``:
    its replayed exchanges are sent to the live service too); put it back after."""
    if (record_mode == "none" and not live) or not _uses(request, "block_network"):
        yield
        return
    request.getfixturevalue("block_network")  # its block is in place before it is lifted
    try:
        from pytest_recording import network
    except ImportError:  # pragma: no cover - the fixture exists only with the plugin
        yield
        return
    original: Any = network._original_connect
    saved = socket.socket.connect, socket.socket.connect_ex
    pycurl_saved = network._disable_pycurl, network._allowed_hosts
    if saved[0] is original and not pycurl_saved[0]:
        yield
        return
    network.unblock_socket()
    network.unblock_pycurl()
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = saved  # type: ignore[method-assign]
        network._disable_pycurl, network._allowed_hosts = pycurl_saved
