"""The pytest plugin: a marker, fixtures and options around :func:`use_cassette`.

``@pytest.mark.compaction`` gives a test the cassette ``<cassette dir>/<module>/<test>.yaml``;
plain ``pytest`` replays it, ``pytest --compaction-record=once`` records it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._errors import CompactionError
from .._settings import DIALECT_NAMES as DIALECTS
from .._settings import OPTION_NAMES, RECORD_MODES

if TYPE_CHECKING:
    from ..replay._fixtures import RecordedExchange
    from ..replay._recorder import Recording

# Starting pytest loads this shell only: the recorder (and vcrpy), the checks and the proxy
# load inside the fixtures and hooks that use them, so a run without compaction tests pays
# for none of it.

# Plugins of their own: cassettes collected as test items (--compaction-check-cassettes), and
# the compaction_proxy fixture.
pytest_plugins = ["pytest_compaction.plugin._collect", "pytest_compaction.plugin._proxy_fixture"]

_RECORDING = pytest.StashKey["Recording"]()
_STATS = pytest.StashKey[dict[str, dict[str, Any]]]()
_SHARED = pytest.StashKey[dict[str, list[str]]]()
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]=,+]")
_MARKER_KEYS = frozenset({"cassette", "record_mode", "version", "strict"}) | OPTION_NAMES


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("compaction", "record/replay and validation of compaction exchanges")
    group.addoption(
        "--compaction-record",
        dest="compaction_record",
        choices=RECORD_MODES,
        default=None,
        help="record mode: none (default: replay only, no network), once, new_episodes, all",
    )
    group.addoption(
        "--compaction-cassette-dir",
        dest="compaction_cassette_dir",
        default=None,
        help="directory of cassettes, relative to the rootdir (default: cassettes)",
    )
    group.addoption(
        "--compaction-version",
        dest="compaction_version",
        default=None,
        help="schema version to validate against (default: the cassette's, else the newest)",
    )
    group.addoption(
        "--compaction-strict",
        dest="compaction_strict",
        action="store_true",
        default=None,
        help="treat undocumented fields as violations",
    )
    group.addoption(
        "--compaction-dialect",
        dest="compaction_dialect",
        choices=(*DIALECTS, "auto"),
        default=None,
        help="gateway dialect to validate under (default: the cassette's, else detected from "
        "the request URL, else openai)",
    )
    group.addoption(
        "--compaction-schema-path",
        dest="compaction_schema_path",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of derived schema versions (or one version folder) that join the "
        "bundled ones (repeatable; also the ini key compaction_schema_path and the environment "
        "variable COMPACTION_SCHEMA_PATH)",
    )
    parser.addini("compaction_record_mode", "default record mode", default="none")
    parser.addini(
        "compaction_cassette_dir", "cassette directory (rootdir-relative)", default="cassettes"
    )
    parser.addini("compaction_version", "schema version to validate against", default="")
    parser.addini(
        "compaction_dialect",
        f"gateway dialect: {', '.join(DIALECTS)} or auto (the default)",
        default="",
    )
    parser.addini(
        "compaction_strict", "treat undocumented fields as violations", type="bool", default=False
    )
    parser.addini(
        "compaction_schema_path",
        "folders of derived schema versions that join the bundled ones (ini-relative)",
        type="paths",
        default=[],
    )
    parser.addini(
        "compaction_filter_headers",
        "extra headers whose values are never written to cassettes",
        type="linelist",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "compaction(cassette=None, *, record_mode=None, version=None, strict=None, dialect=None): "
        "record/replay this test's HTTP traffic from a cassette and validate its "
        "/responses/compact and /responses exchanges",
    )
    dialect = config.getini("compaction_dialect").strip()
    if dialect and dialect not in (*DIALECTS, "auto"):
        raise pytest.UsageError(
            f"compaction_dialect = {dialect!r} is not one of {', '.join(DIALECTS)}, auto"
        )
    config.stash[_STATS] = {}
    extra = [*config.getini("compaction_schema_path"), *config.getoption("compaction_schema_path")]
    if extra:
        from ..schema._versions import add_schema_dirs

        try:
            add_schema_dirs(extra)
        except CompactionError as exc:
            raise pytest.UsageError(f"compaction_schema_path: {exc}") from None
    mode = config.getoption("compaction_record") or config.getini("compaction_record_mode")
    if mode not in RECORD_MODES:
        raise pytest.UsageError(
            f"compaction_record_mode = {mode!r} is not one of {', '.join(RECORD_MODES)}"
        )


# -------------------------------------------------------------------------------------------
# Settings


def _marker_args(
    item: pytest.Item, name: str = "compaction", keys: frozenset[str] = _MARKER_KEYS
) -> dict[str, Any]:
    """The keyword arguments of the marker ``name`` (a lone positional one is the cassette)."""
    marker = item.get_closest_marker(name)
    if marker is None:
        return {}
    kwargs = dict(marker.kwargs)
    if marker.args:
        if len(marker.args) > 1 or "cassette" in kwargs:
            raise pytest.UsageError(f"{item.nodeid}: {name} marker takes one cassette name")
        kwargs["cassette"] = marker.args[0]
    unknown = sorted(set(kwargs) - keys)
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: unknown {name} marker argument(s) {', '.join(unknown)}"
        )
    return kwargs


def _base_dir(config: pytest.Config) -> Path:
    raw = config.getoption("compaction_cassette_dir") or config.getini("compaction_cassette_dir")
    return Path(config.rootpath, str(raw))


def _default_name(item: pytest.Item) -> str:
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    return _UNSAFE.sub("_", name)


def cassette_path(item: pytest.Item, base: Path, cassette: str | None = None) -> Path:
    """Where ``item``'s cassette lives: ``<base>/<module>/<name>.yaml``."""
    module_dir = base / Path(str(item.path)).stem
    path = module_dir / (cassette or _default_name(item))
    if path.suffix not in (".yaml", ".yml", ".json"):
        path = path.with_name(path.name + ".yaml")
    return path


def _uses_cassette(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return item.get_closest_marker("compaction") is not None or "compaction_cassette" in names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shared: dict[str, list[str]] = {}
    base = _base_dir(config)
    for item in items:
        if _uses_cassette(item):
            try:
                args = _marker_args(item)
            except pytest.UsageError:
                continue  # reported when the test runs
            key = str(cassette_path(item, base, args.get("cassette")))
            shared.setdefault(key, []).append(item.nodeid)
    config.stash[_SHARED] = {k: v for k, v in shared.items() if len(v) > 1}


@pytest.fixture(scope="session")
def compaction_config() -> dict[str, Any]:
    """Extra cassette options; override in a conftest (keys: see ``use_cassette``)."""
    return {}


@pytest.fixture
def compaction_cassette_dir(request: pytest.FixtureRequest) -> Path:
    """Directory cassettes live in; override in a conftest to move them."""
    return _base_dir(request.config)


def settings(
    config: pytest.Config, args: dict[str, Any], compaction_config: dict[str, Any]
) -> tuple[str, str | None, str | None, bool]:
    """(record mode, version, dialect, strict) of a test, from the highest-ranked source.

    The command line names the record mode first (a run records or it does not); for the rest
    the marker comes first. Then ``compaction_config``, then the ini keys.
    """
    record_mode = (
        config.getoption("compaction_record")
        or args.get("record_mode")
        or compaction_config.get("record_mode")
        or config.getini("compaction_record_mode")
    )
    version = (
        args.get("version")
        or config.getoption("compaction_version")
        or compaction_config.get("version")
        or config.getini("compaction_version")
        or None
    )
    dialect = (
        args.get("dialect")
        or config.getoption("compaction_dialect", None)
        or compaction_config.get("dialect")
        or str(config.getini("compaction_dialect") or "").strip()
        or None
    )
    strict = args.get("strict")
    if strict is None:
        strict = config.getoption("compaction_strict")
    if strict is None:
        strict = compaction_config.get("strict", config.getini("compaction_strict"))
    return str(record_mode), version, dialect, bool(strict)


@pytest.fixture
def compaction_cassette(
    request: pytest.FixtureRequest,
    compaction_config: dict[str, Any],
    compaction_cassette_dir: Path,
) -> Iterator[Recording]:
    """The active cassette: path, exchanges, counts, ``assert_all_played()``."""
    config = request.config
    item = request.node
    args = _marker_args(item)
    options: dict[str, Any] = dict(compaction_config)
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        pytest.fail(f"compaction_config: unknown option(s) {', '.join(unknown)}", pytrace=False)
    options.update({k: v for k, v in args.items() if k in OPTION_NAMES})

    record_mode, version, dialect, strict = settings(config, args, compaction_config)
    options.pop("record_mode", None)
    options.pop("version", None)
    options.pop("strict", None)
    options.pop("dialect", None)
    options["filter_headers"] = (
        *config.getini("compaction_filter_headers"),
        *options.get("filter_headers", ()),
    )

    path = cassette_path(item, compaction_cassette_dir, args.get("cassette"))
    sharing = config.stash.get(_SHARED, {}).get(str(path), [])
    if sharing and record_mode != "none" and hasattr(config, "workerinput"):
        others = ", ".join(n for n in sharing if n != item.nodeid)
        pytest.fail(
            f"cassette {path} is shared with {others}: recording it from several xdist workers "
            "could lose exchanges. Record these tests without -n, or give each its own cassette.",
            pytrace=False,
        )
    nodeid = item.nodeid

    def hint(mode: str) -> str:
        return f"pytest --compaction-record={mode} {shlex.quote(nodeid)}"

    try:
        from ..replay._recorder import use_cassette

        context = use_cassette(
            path,
            record_mode=record_mode,
            version=version,
            strict=bool(strict),
            dialect=dialect,
            raise_on_exit=False,
            hint=hint,
            **options,
        )
        recording = context.__enter__()
    except CompactionError as exc:
        pytest.fail(f"compaction: {exc}", pytrace=False)
    item.stash[_RECORDING] = recording
    error: BaseException | None = None
    try:
        yield recording
    except BaseException as exc:  # pragma: no cover - fixture teardown does not throw in
        error = exc
        raise
    finally:
        context.__exit__(None if error is None else type(error), error, None)
        remember(config, nodeid, recording.path, recording)
    message = recording.failure()
    if message is not None:
        pytest.fail(message, pytrace=False)


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
        raw = _marker_args(item).get("cassette")
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


@pytest.fixture(autouse=True)
def _compaction_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("compaction") is not None:
        request.getfixturevalue("compaction_cassette")


@pytest.fixture(scope="session")
def compaction_server() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of the embedded compaction server."""
    try:
        from .. import server as _server
    except ImportError as exc:  # pragma: no cover - the server ships with the package
        pytest.skip(f"the embedded compaction server is unavailable: {exc}")
    start = getattr(_server, "start_server", None)
    if start is not None:
        server = start()
        try:
            yield str(server.base_url)
        finally:
            stop = getattr(server, "close", None) or server.stop
            stop()
        return
    server_class = getattr(_server, "CompactionServer", None)
    if server_class is None:
        pytest.skip("the embedded compaction server is unavailable in this build")
    with server_class() as srv:
        yield str(srv.base_url)


# -------------------------------------------------------------------------------------------
# Failing the test, and the summary


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        result = yield
    except BaseException as exc:
        recording = item.stash.get(_RECORDING, None)
        message = recording.failure() if recording is not None else None
        if message is None or isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if str(exc) not in message:
            message += f"\n\n(the test raised {type(exc).__name__}: {exc})"
        raise pytest.fail.Exception(message, pytrace=False) from exc
    recording = item.stash.get(_RECORDING, None)
    message = recording.failure() if recording is not None else None
    if message is not None:
        raise pytest.fail.Exception(message, pytrace=False)
    return result


def remember(config: pytest.Config, nodeid: str, cassette: Path, rec: Any) -> None:
    """Keep a test's counts for the terminal summary (``rec``: a Recording or a proxy)."""
    config.stash[_STATS][nodeid] = {
        "cassette": str(cassette),
        "recorded": rec.recorded,
        "replayed": rec.replayed,
        "validated": rec.validated,
        "violations": list(rec.violations),
        "drift": list(rec.drift),
        "notes": list(rec.notes),
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["compaction_stats"] = json.dumps(config.stash.get(_STATS, {}))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    raw = getattr(node, "workeroutput", {}).get("compaction_stats")
    if raw:
        node.config.stash.setdefault(_STATS, {}).update(json.loads(raw))


def _freshness(config: pytest.Config) -> str | None:
    """The freshness line of the version this run validates against by default."""
    from ..schema._versions import freshness

    version = config.getoption("compaction_version") or config.getini("compaction_version")
    try:
        return freshness(version or None)
    except CompactionError:
        return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    stats = config.stash.get(_STATS, {})
    if not stats:
        return
    tr = terminalreporter
    tr.write_sep("=", "compaction")
    total = {k: sum(s[k] for s in stats.values()) for k in ("recorded", "replayed", "validated")}
    violations = sum(len(s["violations"]) for s in stats.values())
    drift = sum(len(s["drift"]) for s in stats.values())
    tr.write_line(
        f"{len(stats)} test(s) with cassettes: {total['recorded']} exchange(s) recorded, "
        f"{total['replayed']} replayed, {total['validated']} validated; "
        f"{violations} violation(s), {drift} drift note(s)"
    )
    fresh = _freshness(config)
    if fresh:
        tr.write_line(f"note: {fresh}")
    for nodeid in sorted(stats):
        s = stats[nodeid]
        if not s["violations"] and not s["drift"] and not s.get("notes"):
            continue
        tr.write_line(f"{nodeid} ({s['cassette']}):")
        for line in s["violations"]:
            tr.write_line(f"  violation: {line}")
        for line in s["drift"]:
            tr.write_line(f"  drift: {line}")
        for line in s.get("notes", ()):
            tr.write_line(f"  note: {line}")
