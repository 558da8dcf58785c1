"""The ``compaction_proxy`` fixture: a recording/replaying proxy for one test's subprocess clients.

::

    @pytest.mark.compaction_proxy(upstream="https://api.openai.com/v1")
    def test_node_client(compaction_proxy):
        env = {**os.environ, "OPENAI_BASE_URL": compaction_proxy}
        subprocess.run(["node", "client.mjs"], env=env, check=True)

The proxy runs in the test's process; its cassette is ``<cassette dir>/<module>/<test>.yaml``
and its record mode, schema version, strictness, dialect, filtered headers and allowed secrets
come from the same options, ini keys and ``compaction_config`` as the ``compaction`` marker's.
When the test ends, the proxy stops (writing the cassette) and the test fails if an exchange
violated the schemas, was not in the cassette, or could not be recorded, or if a check of
:data:`SESSION_CHECKS` finds a problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._errors import CompactionError

if TYPE_CHECKING:
    from ..proxy._proxy import CompactionProxy


def _chaining(proxy: CompactionProxy) -> list[str]:
    """The chaining rules over the proxy's session (``_chain``, loaded when a test uses it)."""
    from ..contract._chain import check_proxy_session

    return check_proxy_session(proxy)


UPSTREAM_ENV = "PYTEST_COMPACTION_UPSTREAM"
DEFAULT_UPSTREAM = "https://api.openai.com/v1"
_MARKER_KEYS = frozenset(
    {
        "cassette",
        "upstream",
        "record_mode",
        "version",
        "strict",
        "dialect",
        "fail_on_violation",
        "allow_playback_repeats",
        "filter_headers",
        "filter_query_parameters",
        "allow_secrets",
        "keep_volatile_headers",
    }
)

# Checks over everything a test's clients exchanged through the proxy, run at teardown after the
# schema verdicts: each takes the stopped proxy (``proxy.session`` lists the exchanges in order)
# and returns problem messages, empty when satisfied. Contract checks spanning several exchanges,
# such as the chaining of compaction outputs into later inputs, are added here.
SESSION_CHECKS: list[Callable[[CompactionProxy], list[str]]] = [_chaining]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "compaction_proxy(cassette=None, *, upstream=None, record_mode=None, version=None, "
        "strict=None, dialect=None, fail_on_violation=None, allow_playback_repeats=None, "
        "allow_secrets=None): "
        "settings of the compaction_proxy fixture for this test",
    )


def _marker_args(item: pytest.Item) -> dict[str, Any]:
    from ._options import setup_marker_args

    return setup_marker_args(item, "compaction_proxy", _MARKER_KEYS)


@pytest.fixture
def compaction_proxy_upstream() -> str:
    """Where the proxy forwards when recording: ``$PYTEST_COMPACTION_UPSTREAM``, else OpenAI.

    Override in a conftest, or give ``upstream=`` to the ``compaction_proxy`` marker.
    """
    return os.environ.get(UPSTREAM_ENV) or DEFAULT_UPSTREAM


@pytest.fixture
def compaction_proxy_server(
    request: pytest.FixtureRequest,
    compaction_config: dict[str, Any],
    compaction_cassette_dir: Path,
    compaction_proxy_upstream: str,
) -> Iterator[CompactionProxy]:
    """The running :class:`CompactionProxy` of this test (counts, ``session``, ``summary()``)."""
    from ._options import allowed_secrets, cassette_path, refuse_shared, rerun_hint, settings
    from ._summary import failed, remember

    item = request.node
    config = request.config
    if item.get_closest_marker("compaction") is not None or "compaction_cassette" in getattr(
        item, "fixturenames", ()
    ):
        pytest.fail(
            "compaction_proxy cannot be combined with the compaction marker or the "
            "compaction_cassette fixture in one test: their cassette patches HTTP clients in "
            "this process, the proxy's own forwarding included. Use one or the other.",
            pytrace=False,
        )
    args = _marker_args(item)
    chosen = settings(config, args, compaction_config)
    filter_headers = (
        *config.getini("compaction_filter_headers"),
        *compaction_config.get("filter_headers", ()),
        *args.get("filter_headers", ()),
    )
    filter_query = (
        *compaction_config.get("filter_query_parameters", ()),
        *args.get("filter_query_parameters", ()),
    )
    repeats = args.get("allow_playback_repeats")
    if repeats is None:
        repeats = compaction_config.get("allow_playback_repeats", False)
    nodeid = item.nodeid
    path = cassette_path(item, compaction_cassette_dir, args.get("cassette"))
    refuse_shared(item, path, chosen["record_mode"])
    try:
        from ..proxy._proxy import CompactionProxy

        proxy = CompactionProxy(
            args.get("upstream") or compaction_proxy_upstream,
            path,
            **chosen,
            filter_headers=filter_headers,
            filter_query_parameters=filter_query,
            allow_playback_repeats=bool(repeats),
            fail_on_violation=args.get("fail_on_violation"),
            hint=rerun_hint(item),
            allow_secrets=allowed_secrets(
                config, compaction_config.get("allow_secrets"), args.get("allow_secrets")
            ),
            keep_volatile_headers=bool(
                args.get("keep_volatile_headers", compaction_config.get("keep_volatile_headers"))
            ),
        ).start()
    except CompactionError as exc:
        pytest.fail(f"compaction_proxy: {exc}", pytrace=False)
    try:
        yield proxy
    finally:
        proxy.stop()
        remember(config, nodeid, proxy.cassette_path, proxy)
    problems = [p for p in [proxy.failure()] if p]
    for check in SESSION_CHECKS:
        problems += check(proxy)
    if problems:
        failed(config, nodeid, problems[0])
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def compaction_proxy(compaction_proxy_server: CompactionProxy) -> str:
    """The base URL a client takes in place of the upstream URL (``http://127.0.0.1:PORT``)."""
    return compaction_proxy_server.url
