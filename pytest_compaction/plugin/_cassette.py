"""The ``compaction_cassette`` fixture, the marker's use of it, and the test's failure.

A test's cassette is entered before it runs and left after; what the recording found (a
violation, a replay miss, a secret) fails the test with the recording's own message, also when
the test itself raised because of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._errors import CompactionError
from .._settings import OPTION_NAMES
from ._fixtures import replay_environment
from ._live import evaluate
from ._options import (
    age_options,
    allowed_secrets,
    cassette_path,
    refuse_shared,
    rerun_hint,
    settings,
    setup_marker_args,
    verifying,
)
from ._recording import enter_vcr_first, network_for_recording
from ._summary import failed, remember, remember_live

if TYPE_CHECKING:
    from ..replay._recorder import Recording

_RECORDING = pytest.StashKey["Recording"]()
_JUDGED = pytest.StashKey[int]()  # how many of the test's live calls were judged already


@pytest.fixture
def compaction_cassette(
    request: pytest.FixtureRequest,
    compaction_config: dict[str, Any],
    compaction_cassette_dir: Path,
) -> Iterator[Recording]:
    """The active cassette: path, exchanges, counts, ``assert_all_played()``."""
    config = request.config
    item = request.node
    args = setup_marker_args(item)
    options: dict[str, Any] = dict(compaction_config)
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        pytest.fail(
            f"compaction_config: unknown option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(OPTION_NAMES))}",
            pytrace=False,
        )
    options.update({k: v for k, v in args.items() if k in OPTION_NAMES})

    chosen = settings(config, args, compaction_config)
    for name in chosen:  # ranked with the command line and the ini keys: given once, below
        options.pop(name, None)
    options["filter_headers"] = (
        *config.getini("compaction_filter_headers"),
        *options.get("filter_headers", ()),
    )
    options["allow_secrets"] = allowed_secrets(
        config, compaction_config.get("allow_secrets"), args.get("allow_secrets")
    )
    options.update(age_options(config, args, compaction_config))
    verify = verifying(config)

    path = cassette_path(item, compaction_cassette_dir, args.get("cassette"))
    refuse_shared(item, path, chosen["record_mode"])
    nodeid = item.nodeid
    enter_vcr_first(request, str(path))
    stack = ExitStack()
    stack.enter_context(network_for_recording(request, chosen["record_mode"], live=verify))
    if chosen["record_mode"] == "none":
        stack.enter_context(replay_environment(request))
    try:
        from ..replay._recorder import use_cassette

        context = use_cassette(
            path, **chosen, raise_on_exit=False, hint=rerun_hint(item), verify=verify, **options
        )
        recording = context.__enter__()
    except CompactionError as exc:
        stack.close()
        pytest.fail(f"compaction: {exc}", pytrace=False)
    item.stash[_RECORDING] = recording
    error: BaseException | None = None
    try:
        yield recording
    except BaseException as exc:  # pragma: no cover - fixture teardown does not throw in
        error = exc
        raise
    finally:
        try:
            context.__exit__(None if error is None else type(error), error, None)
        finally:
            stack.close()
        remember(config, nodeid, recording.path, recording)
        judge_live(item, recording)
    message = recording.failure()
    if message is not None:
        failed(config, nodeid, message)
        pytest.fail(message, pytrace=False)


def judge_live(item: pytest.Item, recording: Recording) -> None:
    """Under verify: judge the live calls made since the last look; a verdict change or a call
    without an answer becomes a problem of the recording (and so fails the test)."""
    if not recording.verify:
        return
    start = item.stash.get(_JUDGED, 0)
    item.stash[_JUDGED] = len(recording.live_calls)
    found = evaluate(recording, start)
    for line in found.failures:
        recording._problem(line)
    remember_live(item.config, item.nodeid, found)


@pytest.fixture(autouse=True)
def _compaction_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("compaction") is not None:
        request.getfixturevalue("compaction_cassette")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        result = yield
    except BaseException as exc:
        recording = item.stash.get(_RECORDING, None)
        if recording is not None:
            judge_live(item, recording)
        message = recording.failure() if recording is not None else None
        if message is None or isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        failed(item.config, item.nodeid, message)
        if str(exc) not in message:
            message += f"\n\n(the test raised {type(exc).__name__}: {exc})"
        # The test's own error is the same miss: printed once, its text kept in the message.
        raise pytest.fail.Exception(message, pytrace=False) from None
    recording = item.stash.get(_RECORDING, None)
    if recording is not None:
        judge_live(item, recording)
    message = recording.failure() if recording is not None else None
    if message is not None:
        failed(item.config, item.nodeid, message)
        raise pytest.fail.Exception(message, pytrace=False)
    return result
