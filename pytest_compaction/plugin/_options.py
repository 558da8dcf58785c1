"""Options, ini keys, the ``compaction`` marker, and the settings and cassette of a test.

``compaction_allow_secrets`` lines are read once, at start-up (a bad pattern is a usage error);
:func:`allowed_secrets` adds what a test's ``compaction_config`` and marker allow.

:func:`settings` is the one ranking of the sources of a test's record mode, version, dialect
and strictness; :func:`cassette_path` the one rule for where its cassette lives.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pytest

from .._errors import CompactionError
from .._settings import AGE_ACTIONS, OPTION_NAMES, RECORD_MODES
from .._settings import DIALECT_NAMES as DIALECTS

SHARED = pytest.StashKey[dict[str, list["Claim"]]]()
ALLOWED = pytest.StashKey[list[str | re.Pattern[str]]]()
PATTERN_PREFIX = "re:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]=,+]")
_MARKER_KEYS = frozenset({"cassette", "record_mode", "version", "strict"}) | OPTION_NAMES
ORPHAN_MODES = ("off", "report", "fail")


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
        help="one directory of cassettes for every module, relative to the rootdir (default: "
        "a cassettes folder beside each test module)",
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
    group.addoption(
        "--compaction-max-age",
        dest="compaction_max_age",
        default=None,
        metavar="AGE",
        help="a cassette recorded longer ago than this (30d, 12h, 2w) is stale; see "
        "--compaction-max-age-action",
    )
    group.addoption(
        "--compaction-max-age-action",
        dest="compaction_max_age_action",
        choices=AGE_ACTIONS,
        default=None,
        help="what a stale cassette does: warn (default), fail, or rerecord (under a record "
        "mode that writes)",
    )
    group.addoption(
        "--compaction-verify",
        dest="compaction_verify",
        action="store_true",
        default=None,
        help="replay as usual and also send each replayed compaction exchange to the live "
        "service (with the client's own credentials); report verdict changes and drift",
    )
    group.addoption(
        "--compaction-orphans",
        dest="compaction_orphans",
        action="store_const",
        const="report",
        default=None,
        help="at the end, list cassette files no collected test uses (under the cassette "
        "folders of the collected modules). Nothing is deleted",
    )
    group.addoption(
        "--compaction-orphans-fail",
        dest="compaction_orphans",
        action="store_const",
        const="fail",
        help="as --compaction-orphans, and fail the run when there are any",
    )
    parser.addini("compaction_record_mode", "default record mode", default="none")
    parser.addini(
        "compaction_max_age",
        "a cassette recorded longer ago than this (30d, 12h, 2w) is stale (default: no limit)",
        default="",
    )
    parser.addini(
        "compaction_max_age_action",
        f"what a stale cassette does: {', '.join(AGE_ACTIONS)} (default warn)",
        default="",
    )
    parser.addini(
        "compaction_verify",
        "also send replayed compaction exchanges to the live service (see --compaction-verify)",
        type="bool",
        default=False,
    )
    parser.addini(
        "compaction_orphans",
        "report (or fail on) cassette files no collected test uses: off, report, fail",
        default="",
    )
    parser.addini(
        "compaction_cassette_dir",
        "one cassette directory for every module (rootdir-relative; default: a cassettes "
        "folder beside each test module)",
        default="",
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
    parser.addini(
        "compaction_allow_secrets",
        "fake keys tests record on purpose: an exact value a line, or re:PATTERN for the "
        "values a pattern matches whole",
        type="linelist",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "compaction(cassette=None, *, record_mode=None, version=None, strict=None, dialect=None, "
        "allow_secrets=None, max_age=None, max_age_action=None): "
        "record/replay this test's HTTP traffic from a cassette and validate its "
        "/responses/compact and /responses exchanges",
    )
    dialect = config.getini("compaction_dialect").strip()
    if dialect and dialect not in (*DIALECTS, "auto"):
        raise pytest.UsageError(
            f"compaction_dialect = {dialect!r} is not one of {', '.join(DIALECTS)}, auto"
        )
    extra = [*config.getini("compaction_schema_path"), *config.getoption("compaction_schema_path")]
    if extra:
        from ..schema._versions import add_schema_dirs

        try:
            add_schema_dirs(extra)
        except CompactionError as exc:
            raise pytest.UsageError(f"compaction_schema_path: {exc}") from None
    config.stash[ALLOWED] = allowed_lines(config.getini("compaction_allow_secrets"))
    _check_age_options(config)
    orphans = orphans_mode(config)
    if orphans not in ORPHAN_MODES:
        raise pytest.UsageError(
            f"compaction_orphans = {orphans!r} is not one of {', '.join(ORPHAN_MODES)}"
        )
    mode = config.getoption("compaction_record") or config.getini("compaction_record_mode")
    if mode not in RECORD_MODES:
        raise pytest.UsageError(
            f"compaction_record_mode = {mode!r} is not one of {', '.join(RECORD_MODES)}"
        )


def _check_age_options(config: pytest.Config) -> None:
    """A bad ``max_age`` or ``max_age_action`` of the command line or ini is a usage error."""
    from ..replay._age import AGE_FORMS, parse_age

    given = config.getoption("compaction_max_age")
    name = "--compaction-max-age" if given is not None else "compaction_max_age"
    raw = given if given is not None else config.getini("compaction_max_age")
    try:
        parse_age(raw, name)
    except CompactionError:
        raise pytest.UsageError(f"{name} = {raw!r} is not an age: use {AGE_FORMS}") from None
    action = str(config.getini("compaction_max_age_action") or "").strip()
    if action and action not in AGE_ACTIONS:
        raise pytest.UsageError(
            f"compaction_max_age_action = {action!r} is not one of {', '.join(AGE_ACTIONS)}"
        )


def age_options(
    config: pytest.Config, args: dict[str, Any], compaction_config: dict[str, Any]
) -> dict[str, Any]:
    """``max_age`` and ``max_age_action`` of a test: the marker, then the command line, then
    ``compaction_config``, then the ini keys (the values are checked by ``use_cassette``)."""
    out: dict[str, Any] = {}
    for key in ("max_age", "max_age_action"):
        value = args.get(key)
        if value is None:
            value = config.getoption(f"compaction_{key}")
        if value is None:
            value = compaction_config.get(key)
        if value is None:
            value = str(config.getini(f"compaction_{key}") or "").strip() or None
        if value is not None:
            out[key] = value
    return out


def verifying(config: pytest.Config) -> bool:
    """Whether this run verifies replayed exchanges against the live service."""
    return bool(config.getoption("compaction_verify") or config.getini("compaction_verify"))


def orphans_mode(config: pytest.Config) -> str:
    """``off``, ``report`` or ``fail``: the command line's, else the ini key's."""
    raw = config.getoption("compaction_orphans") or config.getini("compaction_orphans")
    return str(raw or "").strip() or "off"


def allowed_lines(lines: list[str]) -> list[str | re.Pattern[str]]:
    """``compaction_allow_secrets``: ``re:PATTERN`` lines are patterns, others exact values."""
    out: list[str | re.Pattern[str]] = []
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith(PATTERN_PREFIX):
            out.append(line)
            continue
        try:
            out.append(re.compile(line[len(PATTERN_PREFIX) :]))
        except re.error as exc:
            raise pytest.UsageError(
                f"compaction_allow_secrets line {n}: not a regular expression: {exc}"
            ) from None
    return out


def allowed_secrets(config: pytest.Config, *sources: Any) -> list[str | re.Pattern[str]]:
    """The secrets a test may record: the ini key's, then each ``allow_secrets`` given."""
    out: list[Any] = [*config.stash.get(ALLOWED, [])]
    for value in sources:
        if value is None:
            continue
        try:
            out += [value] if isinstance(value, str | re.Pattern) else list(value)
        except TypeError:
            out.append(value)  # not a list: use_cassette says what it takes
    return out


def marker_args(
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
            f"{item.nodeid}: unknown {name} marker argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(keys))}"
        )
    return kwargs


def setup_marker_args(
    item: pytest.Item, name: str = "compaction", keys: frozenset[str] = _MARKER_KEYS
) -> dict[str, Any]:
    """:func:`marker_args` for a test being set up: a bad argument fails it in one line."""
    try:
        return marker_args(item, name, keys)
    except pytest.UsageError as exc:
        pytest.fail(str(exc), pytrace=False)


CASSETTES = "cassettes"


def configured_dir(config: pytest.Config) -> Path | None:
    """The one cassette directory named by option or ini key, or None (beside each module)."""
    raw = config.getoption("compaction_cassette_dir") or config.getini("compaction_cassette_dir")
    text = str(raw or "").strip()
    return Path(config.rootpath, text) if text else None


def module_cassette_dir(config: pytest.Config, module: Path) -> Path:
    """Where a module's tests keep cassettes: the configured directory, else
    ``<module folder>/cassettes`` (pytest-recording's layout), so that same-named modules in
    two folders never share one."""
    return configured_dir(config) or Path(module).parent / CASSETTES


def cassette_roots(config: pytest.Config, modules: Iterable[Path] = ()) -> list[Path]:
    """The folders that hold this run's cassettes: the configured one, else ``cassettes``
    beside each module given and at the rootdir (resolved, existing, each once)."""
    configured = configured_dir(config)
    if configured is not None:
        candidates = [configured]
    else:
        candidates = [config.rootpath / CASSETTES, *(Path(m).parent / CASSETTES for m in modules)]
    out: dict[Path, None] = {}
    for folder in candidates:
        resolved = folder.resolve()
        if resolved.is_dir():
            out.setdefault(resolved)
    return list(out)


def _default_name(item: pytest.Item) -> str:
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    return _UNSAFE.sub("_", name)


def cassette_path(item: pytest.Item, base: Path, cassette: str | None = None) -> Path:
    """Where ``item``'s cassette lives: ``<base>/<module>/<name>.yaml``."""
    from ..cassette._find import cassette_file

    return cassette_file(base / Path(str(item.path)).stem / (cassette or _default_name(item)))


def _cassette_marker(item: pytest.Item) -> str | None:
    """The marker whose cassette ``item`` records to: ``compaction`` or ``compaction_proxy``."""
    names = getattr(item, "fixturenames", ())
    if item.get_closest_marker("compaction") is not None or "compaction_cassette" in names:
        return "compaction"
    proxied = {"compaction_proxy", "compaction_proxy_server"} & set(names)
    if item.get_closest_marker("compaction_proxy") is not None or proxied:
        return "compaction_proxy"
    return None


@dataclass(frozen=True)
class Claim:
    """A collected test's use of a cassette file: who, from which module, by which name."""

    nodeid: str
    module: str
    named: bool  # the cassette was named (marker argument), not the test's default


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from ._proxy_fixture import _MARKER_KEYS as PROXY_KEYS

    claims: dict[str, list[Claim]] = {}
    for item in items:
        marker = _cassette_marker(item)
        if marker is None:
            continue
        try:
            keys = _MARKER_KEYS if marker == "compaction" else PROXY_KEYS
            args = marker_args(item, marker, keys)
        except pytest.UsageError:
            continue  # reported when the test runs
        module = Path(str(item.path))
        base = module_cassette_dir(config, module)
        key = str(cassette_path(item, base, args.get("cassette")).resolve())
        claim = Claim(item.nodeid, str(module), args.get("cassette") is not None)
        claims.setdefault(key, []).append(claim)
    config.stash[SHARED] = {k: v for k, v in claims.items() if len(v) > 1}


def _collision(item: pytest.Item, sharing: list[Claim]) -> list[Claim]:
    """The other tests whose cassette is ``item``'s by accident: same file, another module,
    one of the two by its default name (two tests that name one cassette share it on purpose)."""
    mine = next((c for c in sharing if c.nodeid == item.nodeid), None)
    if mine is None:
        return []
    return [
        c
        for c in sharing
        if c.nodeid != item.nodeid and c.module != mine.module and not (c.named and mine.named)
    ]


def refuse_shared(item: pytest.Item, path: Path, record_mode: str) -> None:
    """Fail a test whose cassette another test's is by accident, or that would record, under
    xdist, a cassette other tests use too.

    Paths are compared resolved (``../shared`` from two modules is one file), over the
    cassettes of the ``compaction`` marker and of the proxy fixture alike.
    """
    config = item.config
    sharing = config.stash.get(SHARED, {}).get(str(path.resolve()), [])
    clash = _collision(item, sharing)
    if clash:
        others = ", ".join(c.nodeid for c in clash)
        pytest.fail(
            f"cassette {path} belongs to {item.nodeid} and also to {others}: test modules with "
            "the same name share one cassette folder under compaction_cassette_dir. Name this "
            "test's cassette (@pytest.mark.compaction('name')), or unset "
            "compaction_cassette_dir to keep cassettes beside each module.",
            pytrace=False,
        )
    if sharing and record_mode != "none" and hasattr(config, "workerinput"):
        others = ", ".join(c.nodeid for c in sharing if c.nodeid != item.nodeid)
        pytest.fail(
            f"cassette {path} is shared with {others}: recording it from several xdist workers "
            "could lose exchanges. Record these tests without -n, or give each its own cassette.",
            pytrace=False,
        )


class Settings(TypedDict):
    """A test's settings, named as its cassette (``use_cassette``) and its proxy take them."""

    record_mode: str
    version: str | None
    dialect: str | None
    strict: bool


def settings(
    config: pytest.Config, args: dict[str, Any], compaction_config: dict[str, Any]
) -> Settings:
    """The record mode, version, dialect and strictness of a test, each from its highest source.

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
    return Settings(
        record_mode=str(record_mode), version=version, dialect=dialect, strict=bool(strict)
    )


def rerun_hint(item: pytest.Item) -> Callable[[str], str]:
    """How a failure tells to run ``item`` again in another record mode."""
    nodeid = item.nodeid

    def hint(mode: str) -> str:
        return f"pytest --compaction-record={mode} {shlex.quote(nodeid)}"

    return hint
