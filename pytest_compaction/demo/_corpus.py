"""``pytest-compaction corpus``: the committed ``cassettes/`` folder, recorded byte for byte.

Every cassette is recorded through the official openai SDK and :func:`use_cassette` against a
fresh embedded server (``CompactionServer(deterministic=True)``: ids from counters, a fixed
``created_at`` and ``Date``), with the demo's fixed origin in place of the server's free port,
so the same code gives the same bytes on any machine and any port; the schema version is the
newest bundled one (:func:`corpus_version`), whatever versions a user added, and every
cassette's ``recorded_at`` is :data:`RECORDED_AT`. One server per cassette: each file's ids
start at ``0001`` and no file depends on another. The layout::

    scenarios/<name>.yaml              every scenario of ``pytest-compaction demo``
    dialects/<dialect>/<name>.yaml     a compaction, a stream and an error in each dialect
    streams/<name>.yaml                server-side compaction streamed, and its fault forms
    errors/<name>.yaml                 error answers as the API shapes them
    chains/<name>.yaml                 conversations that pass compaction results on correctly
    checks/<check>/keeps.yaml          for each failure check, a cassette that keeps it
    checks/<check>/breaks.yaml         and one that breaks it
    README.md                          every file, what it shows and its expected verdict
    SHA256SUMS                         the digest of every file above (``sha256sum -c``)
    litellm-proxy/                     recorded through the real LiteLLM proxy by
                                       ``corpus --litellm-proxy`` (``_corpus_litellm``): not
                                       this run's, not in ``SHA256SUMS``, never compared here

Each cassette's verdict under ``pytest-compaction check`` (what fails, what is noted) is part of
its entry, and :func:`build_corpus` checks every recorded cassette against it: a recording that
no longer shows what it claims is a problem, not a corpus. Only the ``dialects`` section may
leave an entry out (a dialect whose scenario does not run against the server yet): the README
then names it and the reason.

:func:`write_corpus` writes the files atomically, only those whose bytes changed. A file the
previous run wrote and this one no longer produces is removed when it still holds the bytes
``SHA256SUMS`` lists for it; a file not listed there, or changed since, is never deleted.
Results are data (:class:`CorpusRun`, :class:`Written`); the command prints them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import write_atomic
from .._errors import CompactionError, counted
from ..server._server import FIXED_CREATED_AT
from ._demo import (
    DEMO_KEY,
    MODEL,
    RECORDED_ORIGIN,
    SCENARIOS,
    Endpoint,
    Scenario,
    _canonical_origin,
    _closing,
    _describe,
)

if TYPE_CHECKING:
    import openai

    from ..cassette._exchange import CassetteData, Exchange

# Every cassette says it was recorded when the deterministic server's answers say they were made.
RECORDED_AT = datetime.fromtimestamp(FIXED_CREATED_AT, UTC)  # 2026-01-01T00:00:00Z
README = "README.md"
MANIFEST = "SHA256SUMS"
# Recorded by ``corpus --litellm-proxy`` (demo._corpus_litellm), never by this run.
LITELLM_FOLDER = "litellm-proxy"
# The first line of the README: what the folder is and how it is made.
HEADLINE = "# The cassettes/ corpus (generated: `pytest-compaction corpus`, do not edit)"

# Typed Any: the SDK takes them as its own input item types.
HISTORY: Any = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
NEXT: Any = {"role": "user", "content": "And 5+5?"}
MORE: Any = {"role": "user", "content": "And 6+6?"}
LONG: Any = {"role": "user", "content": "Tell me the story again. " * 200}
THRESHOLD: Any = [{"type": "compaction", "compact_threshold": 1000}]
# The model each dialect's gateway routes; the others take MODEL.
DIALECT_MODELS = {
    "azure": "shop-assistant-deployment",  # a deployment name
    "truefoundry": "openai-main/gpt-5.4",  # <provider account>/<model>
    "openrouter": "openai/gpt-5.4",  # provider/model
    "vercel": "openai/gpt-5.4",
}


class CorpusError(CompactionError):
    """The corpus cannot be recorded or written as asked (a bad folder, a failed recording)."""


# ---------------------------------------------------------------------------------------------
# What a cassette is expected to show.


@dataclass(frozen=True)
class Verdict:
    """A cassette's verdict under ``pytest-compaction check``.

    ``fails``: what fails it, by check name: a chaining rule's name (``compaction-id``),
    ``rejected-parameters`` (a compact request carrying what the API rejects) or ``schema``
    (any other violation). ``notes``: the notes it gets (``compaction-count``,
    ``threshold-without-compaction``, ``completed-output``: a stream judged by its
    ``output_item.done`` events, ``other``). Empty: it passes without a note.
    """

    fails: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passes(self) -> bool:
        return not self.fails

    def text(self) -> str:
        if self.fails:
            return "FAIL: " + ", ".join(self.fails)
        if self.notes:
            return "pass, note: " + ", ".join(self.notes)
        return "pass"


PASS = Verdict()


def _note_kind(note: str) -> str:
    if "compaction item(s)" in note:
        return "compaction-count"
    if "compact_threshold" in note:
        return "threshold-without-compaction"
    if "response.output_item.done events" in note:
        return "completed-output"
    return "other"


def verdict_of(data: CassetteData) -> Verdict:
    """What ``pytest-compaction check`` finds in a cassette, as a :class:`Verdict`."""
    from ..check._run import _Versions, check_cassette_data

    result = check_cassette_data(data, "<corpus>", _Versions(None, None), strict=False)
    if result.error is not None:
        return Verdict(fails=("unreadable",))
    fails: set[str] = {v.name for v in result.chain}
    notes: set[str] = set()
    for exchange in result.exchanges:
        for _, violation in exchange.baseline.violations():
            fails.add(
                "rejected-parameters" if violation.keyword == "unknown_parameter" else "schema"
            )
        notes.update(_note_kind(note) for note in exchange.baseline.notes)
    return Verdict(tuple(sorted(fails)), tuple(sorted(notes)))


# ---------------------------------------------------------------------------------------------
# The entries: one cassette each.

Steps = Callable[[Endpoint], None]
Edit = Callable[[list["Exchange"]], list["Exchange"]]


@dataclass(frozen=True)
class Entry:
    """One cassette of the corpus: where it goes, what it shows, how it is made, its verdict.

    ``steps`` drive the SDK against the server (``fault``: the server's, for every request);
    ``edit``, when given, changes the recorded exchanges the way a broken gateway or backend
    would (``edited`` says how, for the README). ``violates``: the recording itself breaks the
    schema (the recorder then refuses to write it), so the exchanges it recorded are written
    here, redacted and scanned for secrets the same way.
    """

    path: str  # relative to the corpus folder, with "/"
    what: str
    steps: Steps
    expect: Verdict = PASS
    dialect: str = "openai"
    fault: str | None = None
    edit: Edit | None = None
    edited: str = ""
    violates: bool = False
    optional: bool = False  # may be left out, with its reason (the dialects section)

    @property
    def section(self) -> str:
        return self.path.split("/", 1)[0]


def _client(endpoint: Endpoint, dialect: str = "openai", **headers: str) -> openai.OpenAI:
    from ..contract._dialects import get_dialect

    profile = get_dialect(dialect)
    sent = dict(headers)
    if profile.auth_headers and profile.auth_headers[0] != "authorization":
        sent[profile.auth_headers[0]] = DEMO_KEY  # the gateway's own credential header
    return endpoint.client(profile.base_path, headers=sent or None)


def _dumped(items: Any) -> Any:
    return [i.model_dump(mode="json", exclude_none=True, warnings=False) for i in items]


def _json(raw: bytes | None) -> dict[str, Any]:
    value = json.loads(raw or b"{}")
    if not isinstance(value, dict):
        raise CorpusError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _with_body(exchange: Exchange, response: dict[str, Any]) -> Exchange:
    # The writer makes content-length agree with the body as stored.
    return replace(exchange, response_body=json.dumps(response).encode("utf-8"))


def _expect_error(call: Callable[[], Any], status: int) -> None:
    import openai

    try:
        call()
    except openai.APIStatusError as exc:
        if exc.status_code != status:
            raise CorpusError(f"expected HTTP {status}, got {exc.status_code}") from None
        return
    raise CorpusError(f"expected HTTP {status}, got an answer")


# -- dialects ----------------------------------------------------------------------------------


def _dialect_entries(dialect: str) -> list[Entry]:
    from ..contract._dialects import get_dialect

    model = DIALECT_MODELS.get(dialect, MODEL)
    # A gateway without the compact endpoint compacts server-side only (context_management).
    compacts = bool(get_dialect(dialect).compact_paths)

    def compaction(endpoint: Endpoint) -> None:
        client = _client(endpoint, dialect)
        if compacts:
            compacted = client.responses.compact(model=model, input=HISTORY)
            client.responses.create(model=model, input=[*_dumped(compacted.output), NEXT])
            return
        first = client.responses.create(
            model=model, input=[LONG, NEXT], context_management=THRESHOLD
        )
        out = _dumped(first.output)
        if [i.get("type") for i in out] != ["message", "compaction"]:
            raise CorpusError("expected a message and a compaction item in the answer")
        client.responses.create(model=model, input=[out[-1], MORE], context_management=THRESHOLD)

    def stream(endpoint: Endpoint) -> None:
        events = list(
            _client(endpoint, dialect).responses.create(model=model, input=[NEXT], stream=True)
        )
        if not events or events[-1].type != "response.completed":
            raise CorpusError("the stream did not end with response.completed")

    def error(endpoint: Endpoint) -> None:
        from ..server import FAULT_HEADER

        client = _client(endpoint, dialect, **{FAULT_HEADER: "429;retry-after=0"})
        if compacts:
            _expect_error(lambda: client.responses.compact(model=model, input=HISTORY), 429)
        else:
            _expect_error(lambda: client.responses.create(model=model, input=HISTORY), 429)

    base = f"dialects/{dialect}"
    profile = get_dialect(dialect)
    header = profile.auth_headers[0] if profile.auth_headers else "no credential"
    where = f"{profile.title}: {profile.base_path}, model {model}, {header} header"
    shows = (
        f"compact, then pass the whole output into POST /responses ({where})"
        if compacts
        else "POST /responses past compact_threshold (no compact endpoint), then continue "
        f"from the compaction item ({where})"
    )
    return [
        Entry(f"{base}/compaction.yaml", shows, compaction, dialect=dialect, optional=True),
        Entry(
            f"{base}/stream.yaml",
            "POST /responses streamed (below any threshold: no compaction)",
            stream,
            dialect=dialect,
            optional=True,
        ),
        Entry(
            f"{base}/error.yaml",
            "429 rate limited, in the gateway's error envelope",
            error,
            dialect=dialect,
            optional=True,
        ),
    ]


# -- streams -----------------------------------------------------------------------------------


def _streamed_compaction(endpoint: Endpoint) -> None:
    # The reply echoes the last message: a short one keeps the stream to a few dozen events.
    events = list(
        endpoint.client().responses.create(
            model=MODEL,
            input=[LONG, NEXT],
            context_management=THRESHOLD,
            stream=True,
        )
    )
    kinds = [e.item.type for e in events if e.type == "response.output_item.done"]
    if kinds != ["message", "compaction"]:
        raise CorpusError(f"expected a message and a compaction item, streamed {kinds}")


def _stream_entries() -> list[Entry]:
    entries = [
        Entry(
            "streams/server-side-compaction.yaml",
            "POST /responses streamed past compact_threshold: the compaction item arrives "
            "after the message, re-encrypted in each event that carries it",
            _streamed_compaction,
        )
    ]
    for form, shape in (
        ("empty", "output: []"),
        ("null", "output: null"),
        ("missing", "no output"),
    ):
        entries.append(
            Entry(
                f"streams/completed-output-{form}.yaml",
                f"the same stream whose response.completed carries {shape} (fault "
                f"completed-output:{form}): the items come only from the output_item.done events",
                _streamed_compaction,
                Verdict(notes=("completed-output",)),
                fault=f"completed-output:{form}",
            )
        )
    return entries


# -- errors ------------------------------------------------------------------------------------


def _status_fault(status: int) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        from ..server import FAULT_HEADER

        client = endpoint.client(headers={FAULT_HEADER: str(status)})
        _expect_error(lambda: client.responses.compact(model=MODEL, input=HISTORY), status)

    return steps


def _streamed_429(endpoint: Endpoint) -> None:
    from ..server import FAULT_HEADER

    client = endpoint.client(headers={FAULT_HEADER: "429;retry-after=2"})
    _expect_error(
        lambda: client.responses.create(
            model=MODEL, input=[NEXT], context_management=THRESHOLD, stream=True
        ),
        429,
    )


def _invalid_encrypted_content(endpoint: Endpoint) -> None:
    client = endpoint.client()
    compacted = _dumped(client.responses.compact(model=MODEL, input=HISTORY).output)
    _expect_error(lambda: client.responses.create(model=MODEL, input=[*compacted, NEXT]), 400)
    # The documented recovery: the same turn again without the refused compaction item.
    kept = [item for item in compacted if item.get("type") != "compaction"]
    client.responses.create(model=MODEL, input=[*kept, NEXT])


def _error_entries() -> list[Entry]:
    return [
        Entry(
            "errors/server-error-500.yaml",
            "500 server_error on POST /responses/compact",
            _status_fault(500),
        ),
        Entry(
            "errors/overloaded-503.yaml",
            "503 on POST /responses/compact (high demand)",
            _status_fault(503),
        ),
        Entry(
            "errors/stream-rate-limited-429.yaml",
            "429 with retry-after: 2 answering a streamed POST /responses: JSON, no stream",
            _streamed_429,
        ),
        Entry(
            "errors/invalid-encrypted-content.yaml",
            "400 invalid_encrypted_content for the compaction item a compact answer returned "
            "(fault invalid-encrypted-content, as after a key rotation), then the recovery: "
            "the same turn without the compaction item",
            _invalid_encrypted_content,
            fault="invalid-encrypted-content",
        ),
    ]


# -- chains ------------------------------------------------------------------------------------


def _compact_then_responses(endpoint: Endpoint) -> None:
    client = endpoint.client()
    compacted = client.responses.compact(model=MODEL, input=HISTORY)
    answer = client.responses.create(model=MODEL, input=[*_dumped(compacted.output), NEXT])
    client.responses.create(model=MODEL, previous_response_id=answer.id, input=[MORE])


def _item_only(endpoint: Endpoint) -> None:
    client = endpoint.client()
    compacted = _dumped(client.responses.compact(model=MODEL, input=HISTORY).output)
    client.responses.compact(model=MODEL, input=[compacted[-1], NEXT])


def _stateless_server_side(endpoint: Endpoint) -> None:
    client = endpoint.client()
    items: list[Any] = [LONG]
    for question in (NEXT, MORE):
        answer = client.responses.create(
            model=MODEL,
            input=items,
            context_management=THRESHOLD,
        )
        items += _dumped(answer.output)
        cut = [n for n, item in enumerate(items) if item.get("type") == "compaction"]
        items = items[cut[-1] :] if cut else items
        items.append(question)
    client.responses.create(model=MODEL, input=items, context_management=THRESHOLD)


def _chain_entries() -> list[Entry]:
    return [
        Entry(
            "chains/compact-then-responses.yaml",
            "compact, pass the full output into POST /responses as-is, then continue with "
            "previous_response_id",
            _compact_then_responses,
        ),
        Entry(
            "chains/compaction-item-only.yaml",
            "compact, then continue from the compaction item alone (it carries the items "
            "before it)",
            _item_only,
        ),
        Entry(
            "chains/stateless-server-side.yaml",
            "three POST /responses turns with context_management, chained statelessly: each "
            "sends the conversation from its most recent compaction item on",
            _stateless_server_side,
        ),
    ]


# -- checks ------------------------------------------------------------------------------------


def _compact_output(broken: bool) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        client = endpoint.client()
        out = _dumped(client.responses.compact(model=MODEL, input=HISTORY).output)
        sent = out[:-1] if broken else out  # broken: the compaction item pruned
        client.responses.compact(model=MODEL, input=[*sent, NEXT])

    return steps


def _stateless_chain(broken: bool) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        client = endpoint.client()
        first = client.responses.create(model=MODEL, input=[LONG], context_management=THRESHOLD)
        cmp = _dumped(first.output)[-1]
        second = client.responses.create(
            model=MODEL, input=[cmp, NEXT], context_management=THRESHOLD
        )
        answer = [] if broken else _dumped(second.output)  # broken: the answer left out
        client.responses.create(
            model=MODEL, input=[cmp, NEXT, *answer, MORE], context_management=THRESHOLD
        )

    return steps


def _stateful_chain(broken: bool) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        client = endpoint.client()
        compacted = client.responses.compact(model=MODEL, input=HISTORY)
        resent = _dumped(compacted.output) if broken else []  # broken: held items sent again
        client.responses.compact(
            model=MODEL, previous_response_id=compacted.id, input=[*resent, NEXT]
        )

    return steps


def _encrypted_content(broken: bool) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        client = endpoint.client()
        cmp = _dumped(client.responses.compact(model=MODEL, input=HISTORY).output)[-1]
        if not broken:
            client.responses.compact(model=MODEL, input=[cmp, NEXT])
            return
        token = str(cmp["encrypted_content"])
        cmp["encrypted_content"] = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
        _expect_error(lambda: client.responses.compact(model=MODEL, input=[cmp, NEXT]), 400)

    return steps


def _compaction_id(broken: bool) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        client = endpoint.client()
        out = _dumped(client.responses.compact(model=MODEL, input=HISTORY).output)
        if broken:  # a proxy re-mints the id as it forwards the item: refused, as by the API
            out[-1]["id"] = "cmp_reminted0001"
            _expect_error(lambda: client.responses.create(model=MODEL, input=[*out, NEXT]), 400)
            return
        client.responses.create(model=MODEL, input=[*out, NEXT])

    return steps


def _unstored_previous(broken: bool) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        client = endpoint.client()
        first = client.responses.create(model=MODEL, input=HISTORY, store=not broken)

        def follow() -> Any:
            return client.responses.create(model=MODEL, input=[NEXT], previous_response_id=first.id)

        if broken:
            _expect_error(follow, 400)
        else:
            follow()

    return steps


def _rejected_parameters(broken: bool) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        client = endpoint.client()
        if not broken:
            client.responses.compact(
                model=MODEL,
                input=HISTORY,
                instructions="Be brief.",
                prompt_cache_key="k1",
                prompt_cache_retention="24h",
                service_tier="auto",
            )
            return
        # What a gateway's /responses rewriting adds to a compact request.
        injected = {"include": ["reasoning.encrypted_content"], "store": False, "tools": []}
        _expect_error(
            lambda: client.responses.compact(model=MODEL, input=HISTORY, extra_body=injected),
            400,
        )

    return steps


def _one_compact(endpoint: Endpoint) -> None:
    endpoint.client().responses.compact(model=MODEL, input=HISTORY)


def _two_compaction_items(exchanges: list[Exchange]) -> list[Exchange]:
    (exchange,) = exchanges
    body = _json(exchange.response_body)
    second = {**body["output"][-1], "id": "cmp_second0001"}
    return [_with_body(exchange, {**body, "output": [*body["output"], second]})]


def _past_threshold(endpoint: Endpoint) -> None:
    endpoint.client().responses.create(model=MODEL, input=[LONG], context_management=THRESHOLD)


def _compaction_dropped(exchanges: list[Exchange]) -> list[Exchange]:
    (exchange,) = exchanges
    body = _json(exchange.response_body)
    kept = [i for i in body["output"] if i.get("type") != "compaction"]
    return [_with_body(exchange, {**body, "output": kept})]


def _check_entries() -> list[Entry]:
    def pair(
        name: str, keeps: str, breaks: str, make: Callable[[bool], Steps], verdict: Verdict
    ) -> list[Entry]:
        return [
            Entry(f"checks/{name}/keeps.yaml", keeps, make(False)),
            Entry(f"checks/{name}/breaks.yaml", breaks, make(True), verdict),
        ]

    entries = [
        *pair(
            "compact-output",
            "chain rule 1: the compact output passed on as returned",
            "the compaction item pruned from the next request",
            _compact_output,
            Verdict(fails=("compact-output",)),
        ),
        *pair(
            "stateless-chain",
            "chain rule 2: each turn sends the conversation from its most recent compaction "
            "item on",
            "the third turn leaves out the second turn's answer",
            _stateless_chain,
            Verdict(fails=("stateless-chain",)),
        ),
        *pair(
            "stateful-chain",
            "chain rule 3: previous_response_id and only the new message",
            "previous_response_id, and the items the server holds for it sent again",
            _stateful_chain,
            Verdict(fails=("stateful-chain",)),
        ),
        *pair(
            "encrypted-content",
            "chain rule 4: the compaction item passed back with its encrypted_content unchanged",
            "one character of encrypted_content changed: the server answers 400 "
            "invalid_encrypted_content",
            _encrypted_content,
            Verdict(fails=("encrypted-content",)),
        ),
        *pair(
            "compaction-id",
            "chain rule 5: the compaction item keeps the id it was returned with",
            "the compaction item forwarded under a re-minted id, refused as the live API "
            'refuses it: 400 "Encrypted content item_id did not match the target item id."',
            _compaction_id,
            Verdict(fails=("compaction-id",)),
        ),
        *pair(
            "unstored-previous",
            "chain rule 6: previous_response_id names a stored response",
            "previous_response_id names a response created with store: false (400 "
            "previous_response_not_found)",
            _unstored_previous,
            Verdict(fails=("unstored-previous",)),
        ),
    ]
    rejected = pair(
        "rejected-parameters",
        "a compact request with optional parameters the endpoint takes (instructions, "
        "prompt_cache_key, prompt_cache_retention, service_tier)",
        "include, store and tools in a compact request, as a gateway's /responses rewriting "
        "adds them (400 unknown_parameter)",
        _rejected_parameters,
        Verdict(fails=("rejected-parameters",)),
    )
    entries += [rejected[0], replace(rejected[1], violates=True)]
    entries += [
        Entry(
            "checks/compaction-count/keeps.yaml",
            "a compact answer with exactly one compaction item",
            _one_compact,
        ),
        Entry(
            "checks/compaction-count/breaks.yaml",
            "a compact answer with two compaction items, as a backend that segments the "
            "compaction sends",
            _one_compact,
            Verdict(notes=("compaction-count",)),
            edit=_two_compaction_items,
            edited="a second compaction item added to the recorded answer",
        ),
        Entry(
            "checks/threshold-without-compaction/keeps.yaml",
            "input past compact_threshold, answered with a compaction item",
            _past_threshold,
        ),
        Entry(
            "checks/threshold-without-compaction/breaks.yaml",
            "input past compact_threshold and no compaction item in the answer, as behind a "
            "gateway that dropped context_management",
            _past_threshold,
            Verdict(notes=("threshold-without-compaction",)),
            edit=_compaction_dropped,
            edited="the compaction item removed from the recorded answer",
        ),
    ]
    return entries


def _scenario_steps(scenario: Scenario) -> Steps:
    def steps(endpoint: Endpoint) -> None:
        _, checks = scenario.run(endpoint)
        failed = [what for ok, what in checks if not ok]
        if failed:
            raise CorpusError("expected " + "; ".join(failed))

    return steps


def corpus_entries() -> list[Entry]:
    """Every cassette of the corpus, in the order the README lists them."""
    from ..contract._dialects import DIALECTS

    entries = [
        Entry(
            f"scenarios/{s.name}.yaml",
            f"demo scenario: {s.what}",
            _scenario_steps(s),
            dialect=s.dialect,
        )
        for s in SCENARIOS
    ]
    for dialect in DIALECTS:
        entries += _dialect_entries(dialect)
    return entries + _stream_entries() + _error_entries() + _chain_entries() + _check_entries()


# ---------------------------------------------------------------------------------------------
# Recording.


@dataclass(frozen=True)
class Recorded:
    """One entry recorded: the file's bytes, its exchange count and its verdict."""

    entry: Entry
    data: bytes
    exchanges: int
    verdict: Verdict


@dataclass
class CorpusRun:
    """What a recording of the corpus gave: the files (path -> bytes), and what went wrong."""

    files: dict[str, bytes] = field(default_factory=dict)
    recorded: list[Recorded] = field(default_factory=list)
    skipped: list[tuple[Entry, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _saved(entry: Entry, rec: Any, path: Path) -> CassetteData:
    """The cassette the recording wrote, or (``violates``) the one it refused to write."""
    from ..cassette._exchange import CassetteData
    from ..cassette._file import load_cassette
    from ..cassette._redact import DEFAULT_FILTER_HEADERS, check_no_secrets, redact_exchange
    from ..contract._dialects import get_dialect

    if not entry.violates:
        if rec.problems:
            raise CorpusError(rec.problems[0])
        return load_cassette(path)
    if path.exists():
        raise CorpusError("the recording was expected to break the schema, and was written")
    names = (*DEFAULT_FILTER_HEADERS, *get_dialect(entry.dialect).auth_headers)
    exchanges = [redact_exchange(ex, names) for ex in rec.exchanges]
    check_no_secrets(str(path), exchanges)
    dialect = get_dialect(entry.dialect).name
    return CassetteData(exchanges, rec.version, dialect=dialect, recorded_at=RECORDED_AT)


def corpus_version() -> str:
    """The newest bundled schema version: the corpus is recorded, answered and judged under it,
    whatever versions ``COMPACTION_SCHEMA_PATH`` or ``--compaction-schema-path`` add."""
    from ..schema._versions import _version_folders, schemas_root

    names = [folder.name for folder in _version_folders(schemas_root())]
    if not names:
        raise CorpusError(f"no bundled schema versions under {schemas_root()}")
    return names[-1]


def record_entry(entry: Entry, staging: Path, endpoint: Endpoint | None = None) -> Recorded:
    """Record one entry against a fresh server; CompactionError or any SDK error on failure.

    ``endpoint``: one to point at the server (entries share one: an SDK client is slow to
    make); by default a new one.
    """
    from ..cassette._file import dump_cassette, parse_cassette
    from ..replay._recorder import use_cassette
    from ..server import CompactionServer

    path = staging / (entry.path.replace("/", "__"))
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            CompactionServer(
                deterministic=True,
                dialect=entry.dialect,
                fault=entry.fault,
                schema_version=corpus_version(),
            )
        )
        if endpoint is None:
            endpoint = stack.enter_context(_closing(Endpoint(server.url)))
        endpoint.origin = server.url
        with use_cassette(
            path,
            record_mode="rewrite",
            version=corpus_version(),
            before_record_request=_canonical_origin,
            dialect=entry.dialect,
            raise_on_exit=False,
            recorded_at=RECORDED_AT,
            check_chain=False,  # the verdict below says what the chain keeps or breaks
        ) as rec:
            entry.steps(endpoint)
    data = _saved(entry, rec, path)
    if entry.edit is not None:
        data = replace(data, exchanges=entry.edit(list(data.exchanges)))
    if entry.edit is not None or entry.violates:
        text = dump_cassette(data)
    else:
        text = path.read_text(encoding="utf-8")
    data = parse_cassette(text, entry.path)  # what a reader of the file gets
    return Recorded(entry, text.encode("utf-8"), len(data.exchanges), verdict_of(data))


def build_corpus(entries: list[Entry] | None = None) -> CorpusRun:
    """Record every entry (default: :func:`corpus_entries`) and the README and manifest, in
    memory; a recording that fails, or whose verdict is not the expected one, is a problem
    (an ``optional`` entry's is a skip, with its reason)."""
    run = CorpusRun()
    with (
        tempfile.TemporaryDirectory(prefix="pytest-compaction-corpus-") as staging,
        _closing(Endpoint(RECORDED_ORIGIN)) as endpoint,
    ):
        for entry in entries if entries is not None else corpus_entries():
            try:
                recorded = record_entry(entry, Path(staging), endpoint)
                if recorded.verdict != entry.expect:
                    raise CorpusError(
                        f"expected verdict {entry.expect.text()!r}, got {recorded.verdict.text()!r}"
                    )
            except Exception as exc:  # reported: a corpus run ends with a verdict per file
                reason = _describe(exc).splitlines()[0]
                if entry.optional:
                    run.skipped.append((entry, reason))
                else:
                    run.problems.append(f"{entry.path}: {reason}")
                continue
            run.recorded.append(recorded)
            run.files[entry.path] = recorded.data
    run.files[README] = readme(run).encode("utf-8")
    run.files[MANIFEST] = manifest(run.files).encode("utf-8")
    return run


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(files: dict[str, bytes]) -> str:
    """``sha256sum`` lines for every file but the manifest itself, sorted by path."""
    return "".join(
        f"{_sha256(data)}  {path}\n" for path, data in sorted(files.items()) if path != MANIFEST
    )


_SECTIONS = {
    "scenarios": "Every scenario of `pytest-compaction demo`: its steps and checks, each "
    "against a fresh server.",
    "dialects": "Each gateway dialect (`contract/_dialects.py`): its paths, credential header, "
    "ids, stream ending and error envelope, validated under its profile.",
    "streams": "Server-side compaction streamed as server-sent events, and the fault forms of "
    "its `response.completed`.",
    "errors": "Error answers as the API shapes them (faults of the embedded server).",
    "chains": "Conversations that pass compaction results on the way the chaining rules "
    "(`contract/_chain.py`) ask.",
    "checks": "For each failure check: `keeps.yaml` keeps it, `breaks.yaml` breaks it.",
}


def readme(run: CorpusRun) -> str:
    """The corpus's README: every file, what it shows, and its expected verdict."""
    total = sum(r.exchanges for r in run.recorded)
    lines = [
        HEADLINE,
        "",
        f"{counted(len(run.recorded), 'cassette')}, {counted(total, 'exchange')}, recorded "
        "through the openai SDK against the embedded server "
        "(`CompactionServer(deterministic=True)`, one fresh server per cassette) with the fixed "
        f"origin `{RECORDED_ORIGIN}`, so that a re-record gives the same bytes on any machine "
        "and any port (with the dev extra's pinned openai SDK, whose requests these are).",
        "",
        "- Re-record: `pytest-compaction corpus --out cassettes`",
        "- Compare with a fresh recording: `pytest-compaction corpus --out cassettes --check`",
        "- Judge: `pytest-compaction check cassettes` (the verdicts below), or "
        "`pytest --compaction-check-cassettes` (each exchange as a test item)",
        "- Digests of every file: `SHA256SUMS` (`sha256sum -c SHA256SUMS`)",
        "- Start a recorded-fixture test from one: copy it to "
        "`tests/cassettes/<test module>/<test name>.yaml` and mark the test "
        "`@pytest.mark.compaction`; it replays offline, the SDK getting the recorded answers",
        "",
        "A verdict is what `pytest-compaction check` says: `pass`, `pass, note: <check>` (a note "
        "does not fail), or `FAIL: <check>`. A chaining rule fails the cassette, not an "
        "exchange; a replay through the plugin fails the test. Under `--compaction-check-"
        "cassettes` only what fails an exchange (`rejected-parameters`) fails an item.",
    ]
    for section, text in _SECTIONS.items():
        rows = [r for r in run.recorded if r.entry.section == section]
        skipped = [(e, why) for e, why in run.skipped if e.section == section]
        if not rows and not skipped:
            continue
        lines += ["", f"## {section}/", "", text, ""]
        lines += ["| file | shows | exchanges | verdict |", "|---|---|---|---|"]
        for r in rows:
            what = r.entry.what + (f" (edited: {r.entry.edited})" if r.entry.edited else "")
            name = r.entry.path.removeprefix(f"{section}/")
            lines.append(f"| `{name}` | {what} | {r.exchanges} | {r.entry.expect.text()} |")
        for entry, why in skipped:
            name = entry.path.removeprefix(f"{section}/")
            lines.append(f"| `{name}` | not recorded: {why.replace('|', '/')} | - | - |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Writing and comparing.


@dataclass
class Written:
    """What :func:`write_corpus` did, by relative path."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # stale, but not the generator's bytes


def _listed(out: Path) -> dict[str, str]:
    """The previous manifest's entries (path -> sha256) inside ``out``; {} when there is none.

    A line naming a path outside ``out`` (``..``, absolute, through a link) is passed over:
    nothing outside the folder is ever removed.
    """
    try:
        text = (out / MANIFEST).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    root = out.resolve()
    listed = {}
    for line in text.splitlines():
        digest, sep, path = line.partition("  ")
        if sep and len(digest) == 64 and path and (out / path).resolve().is_relative_to(root):
            listed[path] = digest
    return listed


def _inside(out: Path, relative: str) -> Path:
    target = (out / relative).resolve()
    if not target.is_relative_to(out.resolve()):
        raise CorpusError(f"{relative}: outside {out}")
    return target


def _holds(target: Path, data: bytes) -> bool:
    """Whether ``target`` is a regular file of exactly ``data`` (a named pipe is never read)."""
    try:
        return target.is_file() and target.read_bytes() == data
    except OSError:
        return False


def write_corpus(out: Path, files: dict[str, bytes]) -> Written:
    """Write ``files`` under ``out`` atomically (each only when its bytes changed), the
    manifest last; remove what the previous manifest listed and ``files`` no longer holds, when
    the file still has the listed bytes. Nothing else in ``out`` is touched: a file in the way
    that the previous manifest does not list (a user's README.md, say) stops the write with a
    CorpusError naming it, before anything is written."""
    done = Written()
    previous = _listed(out)
    foreign = [
        relative
        for relative in sorted(files)
        if relative not in previous
        and relative != MANIFEST
        and _inside(out, relative).exists()
        and not _holds(_inside(out, relative), files[relative])
    ]
    if foreign:
        raise CorpusError(
            f"{counted(len(foreign), 'file')} in the way that no earlier corpus run wrote (not "
            f"in {MANIFEST}): {', '.join(foreign)}; move them, or write the corpus to another "
            "folder"
        )
    for relative in sorted(files, key=lambda p: p == MANIFEST):
        target = _inside(out, relative)
        data = files[relative]
        if _holds(target, data):
            done.unchanged.append(relative)
            continue
        write_atomic(target, data)
        done.written.append(relative)
    for relative, digest in sorted(previous.items()):
        if relative in files:
            continue
        target = _inside(out, relative)
        try:
            current = _sha256(target.read_bytes()) if target.is_file() else None
        except OSError:
            current = None
        if current is None:
            continue  # gone already, or no longer a file the run wrote
        if current != digest:
            done.kept.append(relative)
            continue
        target.unlink()
        done.removed.append(relative)
        with contextlib.suppress(OSError):  # an emptied folder goes too (never a full one)
            for parent in target.relative_to(out.resolve()).parents:
                if parent != Path("."):
                    (out.resolve() / parent).rmdir()
    return done


def _files_under(folder: Path) -> Iterator[str]:
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            yield (Path(root) / name).relative_to(folder).as_posix()


@dataclass
class Comparison:
    """A folder compared with a fresh recording, by relative path."""

    differ: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # recorded, not in the folder
    extra: list[str] = field(default_factory=list)  # in the folder, not recorded

    @property
    def same(self) -> bool:
        return not (self.differ or self.missing or self.extra)


def compare_folders(expected: Path, out: Path) -> Comparison:
    """Compare ``out`` byte for byte with ``expected`` (a fresh recording): every file
    either folder holds, hidden ones included, but ``out``'s ``litellm-proxy/`` (its own run's,
    compared by shape)."""
    result = Comparison()
    present = set(_files_under(out)) if out.is_dir() else set()
    # The proxy-recorded subfolder is another run's (``--litellm-proxy``), checked by shape.
    present = {p for p in present if not p.startswith(f"{LITELLM_FOLDER}/")}
    recorded = set(_files_under(expected))
    for relative in sorted(recorded):
        if relative not in present:
            result.missing.append(relative)
        elif not (out / relative).is_file() or (
            (out / relative).read_bytes() != (expected / relative).read_bytes()
        ):
            result.differ.append(relative)  # a pipe or folder in its place differs unread
    result.extra = sorted(present - recorded)
    return result
