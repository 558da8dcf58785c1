"""Fixtures users override or call: configuration, cassette folder, exchanges, the server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._errors import CompactionError
from ._options import cassette_path, module_cassette_dir, setup_marker_args

if TYPE_CHECKING:
    from ..replay._fixtures import RecordedExchange


@pytest.fixture(scope="session")
def compaction_config() -> dict[str, Any]:
    """Extra cassette options; override in a conftest (keys: see ``use_cassette``)."""
    return {}


# What clients read from the environment before any request is made: in replay nothing is
# sent, but the openai SDK refuses to build a client without a key.
REPLAY_ENV = {"OPENAI_API_KEY": "compaction-replay-placeholder"}


@pytest.fixture(scope="session")
def compaction_replay_env() -> dict[str, str]:
    """Environment variables set, when unset, while a test replays (record mode ``none``).

    By default a placeholder ``OPENAI_API_KEY``, so that a client built in the test works in a
    CI job without a key. Override in a conftest to add others (``AZURE_OPENAI_API_KEY``...)
    or return ``{}`` to set none. Recording never sets them: it needs a real key.
    """
    return dict(REPLAY_ENV)


@contextmanager
def replay_environment(request: pytest.FixtureRequest) -> Iterator[None]:
    """``compaction_replay_env``'s variables that are unset, set for the block."""
    wanted = request.getfixturevalue("compaction_replay_env")
    added = {k: str(v) for k, v in dict(wanted).items() if not os.environ.get(k)}
    os.environ.update(added)
    try:
        yield
    finally:
        for name, value in added.items():
            if os.environ.get(name) == value:
                del os.environ[name]


@pytest.fixture(scope="session")
def compaction_server() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of the embedded compaction server, one for
    the session: record against it with no key and no network."""
    from ..server import CompactionServer

    with CompactionServer() as server:
        yield server.base_url


@pytest.fixture
def compaction_cassette_dir(request: pytest.FixtureRequest) -> Path:
    """The directory of this test's cassettes (``<dir>/<module>/<test>.yaml``): by default
    ``cassettes`` beside the test module; override in a conftest to move them."""
    return module_cassette_dir(request.config, Path(str(request.path)))


@pytest.fixture
def compaction_exchanges(
    request: pytest.FixtureRequest, compaction_cassette_dir: Path
) -> list[RecordedExchange]:
    """The exchanges of a cassette, as data: no HTTP, no patching.

    The cassette is the test's ``@pytest.mark.compaction(...)`` one, or the value given by
    indirect parametrization (``@pytest.mark.parametrize("compaction_exchanges", [...],
    indirect=True)``): a name under the cassette directory, like the marker's, or a path.
    """
    from ..replay._fixtures import load_exchanges

    item = request.node
    param = getattr(request, "param", None)
    if param is not None:
        name: str | None = os.fspath(param)
    elif item.get_closest_marker("compaction") is not None:
        raw = setup_marker_args(item).get("cassette")
        name = None if raw is None else str(raw)
    else:
        pytest.fail(
            "compaction_exchanges needs a cassette: mark the test with "
            "@pytest.mark.compaction('name') or parametrize the fixture with indirect=True",
            pytrace=False,
        )
    path = cassette_path(item, compaction_cassette_dir, name)
    try:
        return load_exchanges(path)
    except CompactionError as exc:
        pytest.fail(f"compaction_exchanges: {exc}", pytrace=False)
