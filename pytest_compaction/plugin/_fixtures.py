"""Fixtures users override or call: configuration, cassette folder, exchanges, the server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._errors import CompactionError
from ._options import base_dir, cassette_path, marker_args

if TYPE_CHECKING:
    from ..replay._fixtures import RecordedExchange


@pytest.fixture(scope="session")
def compaction_config() -> dict[str, Any]:
    """Extra cassette options; override in a conftest (keys: see ``use_cassette``)."""
    return {}


@pytest.fixture
def compaction_cassette_dir(request: pytest.FixtureRequest) -> Path:
    """Directory cassettes live in; override in a conftest to move them."""
    return base_dir(request.config)


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
        raw = marker_args(item).get("cassette")
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
