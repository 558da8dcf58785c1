"""Secrets never reach disk: a matrix of placements x key kinds, recorded over real HTTP.

Every placement of :mod:`support.secret_matrix` is recorded through ``use_cassette`` against a
loopback server, once per key kind: an OpenAI project key, an Azure 32-hex key, a Google
``AIza`` key, an AWS key pair, a GitHub token, a JWT, a Bifrost virtual key, and the client's
own credential of a shape no pattern knows (sent as its bearer token, caught because the
recorder remembers what the client sent). Filtered placements (the default credential headers
and query parameters, and what is configured on top) must write a cassette holding the
placeholder instead; every other placement must refuse the write with a :class:`SecretFound`
naming where the secret sits, never the secret itself. After each placement every file under
the test's directory is searched for every key, raw and encoded (and each stored string
decoded), and the captured output for any piece of it.

The same placements go through the pytest plugin (a pytest run of its own, the own key in the
environment too) and through the recording proxy; and the placements the exchanges of a loader
do not read (metadata, unknown fields, ``response.url``, comments) go through ``scan --fix`` on
stock vcrpy cassettes. A summary line (placements, kinds, cases, leaks) ends the run.

``COMPACTION_RELIABILITY_SCALE=N`` draws N fresh keys per kind (default 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import vcr
from support.leaks import leaks, shown
from support.secret_matrix import (
    CARRIERS,
    DOCUMENT_PLACEMENTS,
    FILTERED,
    HX,
    HX2,
    KEYS,
    KINDS,
    PLACEMENTS,
    Ctx,
    DocumentPlacement,
    Placement,
    Server,
    parts_of,
    placements_for,
    sent_by_the_client,
    stock_document,
)

from pytest_compaction import CompactionServer
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._redact import DEFAULT_FILTER_HEADERS, SecretFound
from pytest_compaction.cassette._secrets import PLACEHOLDER
from pytest_compaction.cli import main
from pytest_compaction.replay._recorder import ReplayError, use_cassette

pytest.importorskip("brotli")
TESTS = Path(__file__).resolve().parents[1]
Record = Callable[[str, Any], None]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    try:
        yield srv
    finally:
        srv.close()


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)


def _all_parts(kinds: tuple[str, ...]) -> list[str]:
    return [part for kind in kinds for key in KEYS[kind] for part in parts_of(key)]


CHANNELS = ("use_cassette", "plugin", "proxy", "scan --fix")


class Summary:
    """The matrix's figures, added up over the tests that ran, printed at the end of the run.

    Each process prints its own: run without xdist (``-p no:xdist``) for the whole matrix in
    one line. Every test also records its figures as the user property ``secrets_matrix``.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, record: Record, channel: str, name: str, kinds: tuple[str, ...], cases: int,
            leaked: int) -> None:  # fmt: skip
        row = {"channel": channel, "placement": name, "kinds": list(kinds), "cases": cases,
               "leaks": leaked}  # fmt: skip
        self.rows.append(row)
        record("secrets_matrix", row)

    def line(self) -> str:
        rows = self.rows
        placements = {r["placement"] for r in rows if r["channel"] != "scan --fix"}
        documents = {r["placement"] for r in rows if r["channel"] == "scan --fix"}
        kinds = {kind for r in rows for kind in r["kinds"]}
        cases = {c: sum(r["cases"] for r in rows if r["channel"] == c) for c in CHANNELS}
        through = ", ".join(f"{cases[c]} through {c}" for c in CHANNELS if cases[c])
        return (
            f"{len(placements)} exchange placements and {len(documents)} cassette placements x "
            f"{len(kinds)} key kinds: {sum(cases.values())} cases ({through}); "
            f"{sum(r['leaks'] for r in rows)} leak(s)"
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.rows:
            terminalreporter.write_sep("=", "secrets matrix")
            terminalreporter.write_line(self.line())


@pytest.fixture(scope="session")
def summary(request: pytest.FixtureRequest) -> Summary:
    found = request.config.pluginmanager.get_plugin("secrets-matrix-summary")
    if isinstance(found, Summary):
        return found
    made = Summary()
    request.config.pluginmanager.register(made, "secrets-matrix-summary")
    return made


def test_the_matrix_is_two_hundred_placements_by_eight_key_kinds() -> None:
    names = [p.name for p in PLACEMENTS]
    assert len(set(names)) == len(names)
    assert len(PLACEMENTS) >= 200
    brief = {"openai", "azure", "google", "aws", "github", "jwt", "own"}
    assert brief <= set(KINDS)
    assert sum(len(p.kinds) for p in PLACEMENTS) >= 200 * len(brief)
    assert {p.name for p in FILTERED} >= {f"request header {h}" for h in DEFAULT_FILTER_HEADERS}
    # The ways a key is disguised, each in several places
    for way in (
        "JSON unicode-escaped", "base64", "nested JSON", "percent-encoded", "identifier-glued",
        "SSE split", "UTF-16", "gzip without content-encoding", "reason phrase",
        "cassette metadata",
    ):  # fmt: skip
        assert sum(way in name for name in names) >= 2 or way == "cassette metadata", way
    assert len(CARRIERS) >= 14
    assert {p.name for p in DOCUMENT_PLACEMENTS} >= {
        "metadata text", "interaction unknown field", "response.url", "a YAML comment"
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# use_cassette


def _record_case(path: Path, ctx: Ctx, placement: Placement, kind: str) -> list[str]:
    """Record one placement with one key; what went wrong, if anything."""
    problems: list[str] = []
    if not placement.where:
        try:
            with use_cassette(path, record_mode="once", **placement.options) as rec:
                ctx.cassette = rec._cassette
                placement.action(ctx)
        except ReplayError as exc:
            return [f"{kind}: refused although filtered: {exc}"]
        raw = path.read_bytes() if path.exists() else b""
        if rec.recorded < 1 or PLACEHOLDER.encode() not in raw or not load_cassette(path).exchanges:
            problems.append(f"{kind}: not written with the placeholder")
        return problems
    try:
        with (
            pytest.raises(ReplayError) as info,
            use_cassette(path, record_mode="once", **placement.options) as rec,
        ):
            ctx.cassette = rec._cassette
            placement.action(ctx)
    except pytest.fail.Exception:
        return [f"{kind}: written, not refused"]
    cause = info.value.__cause__
    if not isinstance(cause, SecretFound):
        return [f"{kind}: refused for another reason: {info.value}"]
    found = "\n".join(str(f) for f in cause.findings)
    problems += [
        f"{kind}: {w!r} not in {found!r}" for w in placement.wheres(kind) if w not in found
    ]
    message = str(info.value)
    if f"cassette {path} was not written" not in message:
        problems.append(f"{kind}: {message}")
    if shown(message, parts_of(ctx.key)):
        problems.append(f"{kind}: the message shows the key")
    if path.parent.exists() and any(path.parent.iterdir()):
        problems.append(f"{kind}: something was written")
    return problems


USE_CASSETTE = placements_for("use_cassette")


@pytest.mark.parametrize("placement", USE_CASSETTE, ids=[p.name for p in USE_CASSETTE])
def test_no_secret_reaches_disk(
    tmp_path: Path,
    server: Server,
    placement: Placement,
    capfd: pytest.CaptureFixture[str],
    record_property: Record,
    summary: Summary,
) -> None:
    problems: list[str] = []
    cases = 0
    for kind in placement.kinds:
        for n, key in enumerate(KEYS[kind]):
            cases += 1
            ctx = Ctx(server, f"/v1/{_slug(placement.name)}/{kind}{n}", key)
            HX.cookies.clear()
            HX2.cookies.clear()
            with sent_by_the_client(kind, key):
                problems += _record_case(tmp_path / kind / f"{n}.yaml", ctx, placement, kind)
    out, err = capfd.readouterr()
    parts = _all_parts(placement.kinds)
    found = leaks(tmp_path, parts) + shown(out + err, parts)
    summary.add(record_property, "use_cassette", placement.name, placement.kinds, cases, len(found))
    assert found == []
    assert problems == []


# ---------------------------------------------------------------------------------------------
# The same through the pytest plugin, in a pytest run of its own.

PLUGIN = placements_for("plugin")

PLUGIN_TESTS = """
import os
import sys

import pytest

sys.path.insert(0, os.environ["SECRETS_TESTS"])
from support.secret_matrix import HX, HX2, KEYS, Ctx, Server, placements_for, sent_by_the_client

PLACEMENTS = placements_for("plugin")


def kind_of(index):
    placement = PLACEMENTS[index]
    return placement.kinds[index % len(placement.kinds)]


@pytest.fixture(scope="session")
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.mark.parametrize(
    "index",
    [pytest.param(i, marks=pytest.mark.compaction(**p.options)) for i, p in enumerate(PLACEMENTS)],
)
def test_placement(index, server, compaction_cassette):
    kind = kind_of(index)
    key = KEYS[kind][0]
    ctx = Ctx(server, f"/v1/p{index}", key, cassette=compaction_cassette._cassette)
    HX.cookies.clear()
    HX2.cookies.clear()
    with sent_by_the_client(kind, key):
        PLACEMENTS[index].action(ctx)
"""


def _plugin_kind(index: int) -> str:
    placement = PLUGIN[index]
    return placement.kinds[index % len(placement.kinds)]


def test_through_the_plugin_filtered_pass_refused_fail_with_the_place(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Record,
    summary: Summary,
) -> None:
    monkeypatch.setenv("SECRETS_TESTS", str(TESTS))
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["own"][0])  # known from the environment too
    pytester.makepyfile(test_matrix=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess(
        "--compaction-record=once", "-p", "no:cacheprovider", "-q"
    )
    full = result.stdout.str() + result.stderr.str()
    used = {KEYS[_plugin_kind(i)][0] for i in range(len(PLUGIN))}
    parts = sorted({part for key in used for part in parts_of(key)})
    on_disk = leaks(pytester.path, parts)
    printed = shown(full, parts)
    for i, placement in enumerate(PLUGIN):
        mine = sum(f"test_placement[{i}].yaml:" in line for line in on_disk)
        extra = len(printed) + len(on_disk) - sum(".yaml:" in line for line in on_disk)
        leaked = mine + (extra if i == 0 else 0)
        summary.add(record_property, "plugin", placement.name, (_plugin_kind(i),), 1, leaked)
    assert on_disk == [] and printed == []
    refused = [i for i, p in enumerate(PLUGIN) if p.where]
    # A refused write is found when the cassette is saved, at teardown: each refused test
    # passes its call and errors in teardown with the message.
    result.assert_outcomes(passed=len(PLUGIN), errors=len(refused))
    errors = {
        int(line.split("[", 1)[1].split("]", 1)[0])
        for line in full.splitlines()
        if line.startswith("ERROR test_matrix.py::test_placement[")
    }
    assert errors == set(refused)
    out = full.split("short test summary info")[0]
    # once in each test's report, then once more as the first line the compaction summary keeps
    report, _, kept = out.partition("= compaction =")
    assert report.count("it would contain what looks like a secret") == len(refused)
    assert kept.count("it would contain what looks like a secret") == len(refused)
    assert f"; {len(refused)} test(s) failed by their cassette" in kept
    for i in refused:
        for where in PLUGIN[i].wheres(_plugin_kind(i)):
            assert where in out, (PLUGIN[i].name, where)
    written = {p.stem for p in (pytester.path / "cassettes").rglob("*.yaml")}
    assert written == {f"test_placement[{i}]" for i, p in enumerate(PLUGIN) if not p.where}


# ---------------------------------------------------------------------------------------------
# The same through the recording proxy (clients vcrpy cannot see): one key kind per placement.

VIA_PROXY = [
    p
    for p in placements_for("proxy")
    if not any(word in p.name for word in ("307", "302", "userinfo"))
]


@pytest.mark.parametrize("index", range(len(VIA_PROXY)), ids=[p.name for p in VIA_PROXY])
def test_no_secret_reaches_disk_through_the_proxy(
    tmp_path: Path,
    server: Server,
    index: int,
    caplog: pytest.LogCaptureFixture,
    record_property: Record,
    summary: Summary,
) -> None:
    from pytest_compaction.proxy._proxy import CompactionProxy

    placement = VIA_PROXY[index]
    kind = placement.kinds[index % len(placement.kinds)]
    key = KEYS[kind][0]
    path = tmp_path / "c.yaml"
    proxy = CompactionProxy(
        server.origin,
        path,
        record_mode="once",
        filter_headers=placement.options.get("filter_headers", ()),
        filter_query_parameters=placement.options.get("filter_query_parameters", ()),
    )
    HX.cookies.clear()
    HX2.cookies.clear()
    with proxy, sent_by_the_client(kind, key):
        placement.action(Ctx(server, f"/v1/proxy-{index}", key, base=proxy.url))
    failure = proxy.failure() or ""
    found = leaks(tmp_path, parts_of(key)) + shown(failure + caplog.text, parts_of(key))
    summary.add(record_property, "proxy", placement.name, (kind,), 1, len(found))
    assert found == []
    if placement.where:
        for where in placement.wheres(kind):
            assert where in failure, (kind, where, failure)
        assert "was not written" in failure
    else:
        # Written, with the placeholder (or without the header: a proxy drops hop-by-hop ones).
        assert failure == "", failure
        assert load_cassette(path).exchanges


# ---------------------------------------------------------------------------------------------
# What a loader does not read, in cassettes other tools wrote: scan --fix


@pytest.fixture(scope="module")
def stock_cassette(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A stock vcrpy cassette, recorded over real HTTP from the embedded server."""
    path = tmp_path_factory.mktemp("stock") / "stock.yaml"
    body = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]}
    with (
        CompactionServer() as srv,
        vcr.VCR(record_mode="once").use_cassette(str(path)),
    ):
        assert httpx.post(srv.base_url + "/responses/compact", json=body).status_code == 200
    return path.read_text()


def _scan(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["scan", *args])
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.parametrize(
    "placement", DOCUMENT_PLACEMENTS, ids=[p.name for p in DOCUMENT_PLACEMENTS]
)
def test_scan_fix_leaves_no_secret_in_a_foreign_cassette(
    tmp_path: Path,
    stock_cassette: str,
    placement: DocumentPlacement,
    capsys: pytest.CaptureFixture[str],
    record_property: Record,
    summary: Summary,
) -> None:
    problems: list[str] = []
    printed = ""
    cases = 0
    for kind in placement.kinds:
        for n, key in enumerate(KEYS[kind]):
            cases += 1
            path = tmp_path / kind / f"{n}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(stock_document(stock_cassette, placement, key))
            code, out = _scan(str(path), capsys=capsys)
            if code != 1 or placement.where not in out:
                problems.append(f"{kind}: scan said {code}: {out}")
            fixed, fix_out = _scan("--fix", str(path), capsys=capsys)
            again, again_out = _scan(str(path), capsys=capsys)
            if (fixed, again) != (0, 0):
                problems.append(f"{kind}: --fix {fixed}, then {again}: {fix_out}")
            printed += out + fix_out + again_out
    parts = _all_parts(placement.kinds)
    found = leaks(tmp_path, parts) + shown(printed, parts)
    summary.add(record_property, "scan --fix", placement.name, placement.kinds, cases, len(found))
    assert found == []
    assert problems == []


# ---------------------------------------------------------------------------------------------
# Messages quote requests: a replay miss must not print the key to the (often public) test log.


def test_a_replay_miss_explains_without_quoting_keys(tmp_path: Path, server: Server) -> None:
    path = tmp_path / "c.yaml"
    with use_cassette(path, record_mode="once"):
        HX.post(server.origin + "/v1/miss", json={"q": 1})
    for kind in KINDS:
        key = KEYS[kind][0]
        quoted = quote(key, safe="")
        attempts: list[tuple[str, str, Any]] = [
            ("GET", f"{server.origin}/v1/miss?api-key={quoted}", None),
            ("GET", f"{server.origin}/v1/miss?token={quoted}", None),
            ("GET", f"{server.origin}/v1/keys/{key}/miss", None),
            ("POST", f"{server.origin}/v1/miss", {"q": 1, "note": f"api key {key}"}),
        ]
        for method, url, body in attempts:
            with (
                sent_by_the_client(kind, key),
                pytest.raises(ReplayError) as info,
                use_cassette(path, record_mode="none"),
            ):
                HX.request(method, url, json=body)
            message = str(info.value)
            assert "cannot be replayed" in message
            assert shown(message, parts_of(key)) == [], (kind, message)
