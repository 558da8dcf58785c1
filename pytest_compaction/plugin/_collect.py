"""Cassettes as test items: ``pytest --compaction-check-cassettes``.

Every cassette under the cassette directories (the configured one, else each ``cassettes``
folder: beside a test module, or at the rootdir) becomes a collector with one item per
``POST /responses/compact`` or ``POST /responses`` exchange, which validates the exchange like
``pytest-compaction check`` does, and, when it holds two or more of them, a ``chain`` item that
checks the chaining rules across them (``contract._chain``). A downstream suite thus runs its
regression checks with plain ``pytest`` (and in parallel under xdist, since items are ordinary
items). Cassettes that the normal collection walk does not reach are added when pytest was
started without explicit paths; with paths, only the cassettes under them are collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .._errors import CompactionError
from ..cassette._find import has_cassette_suffix, hidden_below, walk
from ._options import CASSETTES, cassette_roots, configured_dir

if TYPE_CHECKING:
    from ..cassette._exchange import CassetteData, Exchange

# The cassette and check modules load only when cassettes are collected
# (--compaction-check-cassettes): starting pytest stays light.

_SEEN = pytest.StashKey[set[Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("compaction")
    group.addoption(
        "--compaction-check-cassettes",
        dest="compaction_check_cassettes",
        action="store_true",
        default=None,
        help="collect every cassette under the cassette directory as test items, one per "
        "/responses/compact or /responses exchange, that validate the recorded exchange",
    )
    parser.addini(
        "compaction_check_cassettes",
        "collect cassettes as test items that validate them",
        type="bool",
        default=False,
    )


def _enabled(config: pytest.Config) -> bool:
    option = config.getoption("compaction_check_cassettes", default=None)
    return bool(option) if option is not None else bool(config.getini("compaction_check_cassettes"))


def _root_of(resolved: Path, config: pytest.Config) -> Path | None:
    """The cassette directory ``resolved`` lies in: the configured one, else the deepest
    ``cassettes`` folder of its path below the rootdir."""
    configured = configured_dir(config)
    if configured is not None:
        base = configured.resolve()
        return base if resolved.is_relative_to(base) else None
    rootdir = config.rootpath.resolve()
    if not resolved.is_relative_to(rootdir):
        return None
    parents = [p for p in resolved.parents if p.is_relative_to(rootdir) and p.name == CASSETTES]
    return parents[0] if parents else None


def _named(config: pytest.Config) -> set[Path]:
    """Files named on the command line (``path::node`` selections included)."""
    here = config.invocation_params.dir
    return {(here / str(arg).split("::")[0]).resolve() for arg in config.args}


def _is_candidate(path: Path, config: pytest.Config) -> bool:
    """Named on the command line, or below the cassette directory where a walk takes it.

    Hidden names count from the deepest folder named (or the directory), as for ``check``.
    """
    if not has_cassette_suffix(path):
        return False
    resolved = path.resolve()
    named = _named(config)
    if resolved not in named:
        base = _root_of(resolved, config)
        if base is None:
            return False
        roots = [root for root in (base, *named) if resolved.is_relative_to(root)]
        if hidden_below(resolved, max(roots, key=lambda root: len(root.parts))):
            return False
    try:
        with path.open("rb") as handle:
            return b"interactions" in handle.read()
    except OSError:
        return True  # let the collector report why it cannot be read


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    config = parent.config
    if not _enabled(config) or not _is_candidate(file_path, config):
        return None
    config.stash.setdefault(_SEEN, set()).add(file_path.resolve())
    collector: pytest.Collector = CassetteFile.from_parent(parent, path=file_path)
    return collector


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection sees the items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not _enabled(config) or config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    modules = {Path(str(item.path)) for item in items}
    seen = config.stash.setdefault(_SEEN, set())
    found = (path for base in cassette_roots(config, modules) for path in walk(base))
    for path in found:
        if path.resolve() in seen or not _is_candidate(path, config):
            continue
        seen.add(path.resolve())
        items.extend(CassetteFile.from_parent(session, path=path).collect())


class CassetteFile(pytest.File):
    """One cassette; its items are its compaction exchanges."""

    def collect(self) -> Iterator[pytest.Item]:
        from ..cassette._exchange import CassetteError
        from ..check._run import read_cassette
        from ..contract._routes import route_of

        try:
            data = read_cassette(self.path)
        except CassetteError as exc:
            yield UnreadableCassette.from_parent(self, name="load", error=str(exc))
            return
        assert data is not None  # an explicit read never skips
        calls = 0
        for index, exchange in enumerate(data.exchanges):
            if route_of(exchange.method, exchange.uri) is not None:
                calls += 1
                yield ExchangeItem.from_parent(
                    self, name=f"exchange[{index}]", data=data, index=index, exchange=exchange
                )
        if calls > 1:  # the chaining rules link a request to an earlier answer
            yield ChainItem.from_parent(self, name="chain", data=data)


class ExchangeFailed(Exception):
    """An exchange that does not conform; the message is the whole report."""


class ExchangeItem(pytest.Item):
    """Validates one recorded exchange: the request, and the response or error body."""

    def __init__(
        self, *, data: CassetteData, index: int, exchange: Exchange, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.index = index
        self.exchange = exchange

    def runtest(self) -> None:
        config = self.config
        requested = config.getoption("compaction_version", default=None) or config.getini(
            "compaction_version"
        )
        strict = config.getoption("compaction_strict", default=None)
        if strict is None:
            strict = config.getini("compaction_strict")
        from ..check._run import check_exchange
        from ..schema._versions import resolve_version

        where = f"exchange {self.index} of cassette {self.path}"
        try:
            version = resolve_version(requested or self.data.schema_version or None)
            result = check_exchange(
                self.exchange,
                version,
                strict=bool(strict),
                index=self.index,
                dialect=self.data.dialect,
            )
        except CompactionError as exc:
            raise ExchangeFailed(f"{where}: {exc}") from None
        if not result.passed:
            lines = [f"{where} does not conform to schema version {result.baseline.version}:"]
            lines += [f"  {line}" for line in result.baseline.lines()]
            raise ExchangeFailed("\n".join(lines))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ExchangeFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        path = self.exchange.path
        return (
            self.path,
            None,
            f"{self.path.name} exchange {self.index}: {self.exchange.method} {path}",
        )


class ChainItem(pytest.Item):
    """Checks the chaining rules across the cassette's exchanges, as replay and ``check`` do."""

    def __init__(self, *, data: CassetteData, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    def runtest(self) -> None:
        from ..contract._chain import chain_failure

        message = chain_failure(self.data.exchanges, f"cassette {self.path}")
        if message is not None:
            raise ExchangeFailed(message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ExchangeFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.path.name}: chaining rules"


class UnreadableCassette(pytest.Item):
    """Stands for a cassette that cannot be read, so that the run reports it as a failure."""

    def __init__(self, *, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise ExchangeFailed(self.error)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ExchangeFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.path.name}: unreadable cassette"
