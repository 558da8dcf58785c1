"""``--compaction-orphans``: cassette files that no collected test uses, listed at the end.

The rule: only the cassette folders of the modules this run collected are judged, and within
them every cassette file (``.yaml``, ``.yml``, ``.json``, at any depth) that no test of those
modules names is an orphan. A module's folder is ``<cassette dir>/<module>/``: the
``cassettes`` folder beside the module, or the configured ``compaction_cassette_dir``, and
pytest-recording's ``<module dir>/cassettes/<module>/`` when that plugin is active. A test
names a cassette by the ``compaction`` marker (or the ``compaction_cassette`` fixture), the
``compaction_proxy`` marker or fixture, ``compaction_exchanges`` parametrized indirectly, or
pytest-recording's ``vcr`` marker (its default name and the marker's extra paths).

So a selection never makes other files orphans: a module outside the paths given is not
collected and not judged; a test that ``-k``, ``-m`` or ``--lf`` deselects still counts as
using its cassette; a module named with ``::`` (part of it selected) is not judged. What a
conftest computes at run time (an overridden ``vcr_cassette_dir``, ``default_cassette_name``
or ``compaction_cassette_dir`` fixture) is not seen; such folders are not judged either.

Nothing is deleted. ``--compaction-orphans-fail`` (ini ``compaction_orphans = fail``) makes a
run that found orphans exit non-zero. Under xdist each
worker sends what it collected and the controller reports once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from .._settings import CASSETTE_SUFFIXES
from ._options import (
    CASSETTES,
    _cassette_marker,
    cassette_path,
    marker_args,
    module_cassette_dir,
    orphans_mode,
)

_DESELECTED = pytest.StashKey[list[pytest.Item]]()
# folders judged -> cassette files used, as resolved path strings
_USE = pytest.StashKey[dict[str, set[str]]]()
_PARTIAL = pytest.StashKey[set[str]]()  # modules named with ``::``: not judged
_FOUND = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_DESELECTED] = []
    config.stash[_USE] = {}
    partial: set[str] = set()
    for arg in config.args:
        if "::" in str(arg):
            partial.add(str(Path(config.invocation_params.dir, str(arg).split("::")[0]).resolve()))
    config.stash[_PARTIAL] = partial


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash.setdefault(_DESELECTED, []).extend(items)


def _vcr_names(item: pytest.Item, folder: Path) -> list[Path]:
    """The cassettes pytest-recording gives a ``vcr`` test: its default name, the extras."""
    marker = item.get_closest_marker("vcr")
    if marker is None:
        return []
    default = item.get_closest_marker("default_cassette")
    if default is not None and default.args:
        name = str(default.args[0])
    else:
        cls = getattr(item, "cls", None)
        name = f"{cls.__name__}.{item.name}" if cls is not None else item.name
        for ch in "<>?%*:|\"'/\\":
            name = name.replace(ch, "-")
    out = [folder / name, folder / f"{name}.yaml"]
    for extra in marker.args:
        path = Path(str(extra))
        path = path if path.is_absolute() else folder / path
        out += [path, path.with_name(path.name + ".yaml")]
    return out


def _named(item: pytest.Item) -> list[Path]:
    """Every cassette file ``item`` uses (the paths need not exist)."""
    config = item.config
    module = Path(str(item.path))
    out: list[Path] = []
    marker = _cassette_marker(item)
    if marker is not None:
        from ._options import _MARKER_KEYS
        from ._proxy_fixture import _MARKER_KEYS as PROXY_KEYS

        try:
            args = marker_args(item, marker, _MARKER_KEYS if marker == "compaction" else PROXY_KEYS)
        except pytest.UsageError:
            args = {}
        out.append(cassette_path(item, module_cassette_dir(config, module), args.get("cassette")))
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("compaction_exchanges") if callspec is not None else None
    if param is not None:
        out.append(cassette_path(item, module_cassette_dir(config, module), os.fspath(param)))
    out += _vcr_names(item, module.parent / CASSETTES / module.stem)
    return out


def _folders(config: pytest.Config, module: Path) -> list[Path]:
    folders = [module_cassette_dir(config, module) / module.stem]
    if config.pluginmanager.hasplugin("recording"):
        folders.append(module.parent / CASSETTES / module.stem)
    return folders


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if orphans_mode(config) == "off":
        return
    partial = config.stash.get(_PARTIAL, set())
    use: dict[str, set[str]] = {}
    items = [*session.items, *config.stash.get(_DESELECTED, [])]
    for item in items:
        module = Path(str(item.path)).resolve()
        if str(module) in partial or module.suffix != ".py":
            continue
        for folder in _folders(config, module):
            use.setdefault(str(folder.resolve()), set())
    for item in items:
        for path in _named(item):
            resolved = str(path.resolve())
            for judged, used in use.items():
                if resolved.startswith(judged + os.sep):
                    used.add(resolved)
    config.stash[_USE] = use


def _orphans(use: dict[str, set[str]]) -> list[str]:
    found: set[str] = set()
    for folder, used in use.items():
        root = Path(folder)
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.suffix in CASSETTE_SUFFIXES and path.is_file():
                resolved = str(path.resolve())
                if resolved not in used:
                    found.add(resolved)
    return sorted(found)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    mode = orphans_mode(config)
    if mode == "off":
        return
    workeroutput = getattr(config, "workeroutput", None)
    use = config.stash.get(_USE, {})
    if workeroutput is not None:
        workeroutput["compaction_orphans"] = json.dumps({k: sorted(v) for k, v in use.items()})
        return
    found = _orphans(use)
    config.stash[_FOUND] = found
    if found and mode == "fail" and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    raw = getattr(node, "workeroutput", {}).get("compaction_orphans")
    if not raw:
        return
    use = node.config.stash.setdefault(_USE, {})
    for folder, used in json.loads(raw).items():
        use.setdefault(folder, set()).update(used)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if orphans_mode(config) == "off" or hasattr(config, "workerinput"):
        return
    found = config.stash.get(_FOUND, [])
    folders = [f for f in config.stash.get(_USE, {}) if Path(f).is_dir()]
    tr = terminalreporter
    tr.write_sep("-", "compaction orphans")
    tr.write_line(
        f"{len(found)} cassette file(s) that no collected test uses, in the "
        f"{len(folders)} cassette folder(s) of the collected modules (nothing deleted)"
    )
    root = config.rootpath.resolve()
    for path in found:
        try:
            shown = str(Path(path).relative_to(root))
        except ValueError:
            shown = path
        tr.write_line(f"  orphan: {shown}")
