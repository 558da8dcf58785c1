"""``pytest-compaction demo``: record, replay offline and validate, end to end, with no API key.

The embedded server (deterministic mode) answers the official openai SDK while every exchange
is recorded to a cassette and validated; then the server stops, sockets are blocked, and each
scenario runs again from its cassette. The replayed SDK objects must equal the recorded ones.
The folder gets a ``.gitignore`` of ``*`` (:func:`ignore_folder`), so that the demo leaves
nothing new in ``git status``. :func:`run_demo` returns what happened as data; the command
prints it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .._atomic import create_atomic

# Light: the network guard is standard library only.
from ..replay._netguard import block_network

if TYPE_CHECKING:
    import openai

    from ..replay._recorder import Recording

MODEL = "gpt-5.4"
# Key-shaped on purpose: it is only written if header filtering fails, and then the secret
# scan refuses the write, so a passing demo shows both safeguards at work.
DEMO_KEY = "sk-demo-not-a-secret"
# The server listens on a free port; cassettes record this fixed origin instead so that runs
# give identical bytes. Replay matches on method, path, query and body, never on the host.
RECORDED_ORIGIN = "http://127.0.0.1:8000"
RATE_LIMIT_FAULT = "429;retry-after=0"


# ---------------------------------------------------------------------------------------------
# Scenarios: each drives the SDK and returns what it got back, so record and replay compare.


@dataclass(frozen=True)
class ErrorOutcome:
    """What the SDK raised, reduced to what a replay must reproduce."""

    exception: str
    status: int
    body: Any
    retry_after: str | None


class Endpoint:
    """Where scenarios send requests: the live server, then the stopped one (replay)."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self._base: openai.OpenAI | None = None

    def client(self, prefix: str = "/v1", headers: dict[str, str] | None = None) -> openai.OpenAI:
        if self._base is None:
            import openai

            # No retries: each request is one exchange, so record and replay line up one to one.
            self._base = openai.OpenAI(
                base_url=self.origin + "/v1", api_key=DEMO_KEY, max_retries=0, timeout=10
            )
        # Variants share the base client's connection pool (and its TLS setup, which is slow).
        return self._base.with_options(base_url=self.origin + prefix, default_headers=headers)

    def close(self) -> None:
        if self._base is not None:
            self._base.close()


Outcome = Any  # an SDK response object or an ErrorOutcome
Check = tuple[bool, str]  # (holds, what should hold)


def _history() -> list[Any]:
    return [
        {"role": "system", "content": "You are a terse assistant for a bicycle shop."},
        {"role": "user", "content": "Do you fix tubeless tyres?"},
        {"role": "assistant", "content": "Yes, same day if you drop the wheel off by noon."},
        {"role": "user", "content": "And what does a sealant top-up cost?"},
    ]


def _is_compacted(response: Any, users: int) -> Check:
    output = response.output
    ok = (
        len(output) == users + 1
        and output[-1].type == "compaction"
        and all(item.type == "message" and item.role == "user" for item in output[:-1])
    )
    return ok, f"{response.id}: {users} user message(s) then one compaction item"


def plain(endpoint: Endpoint) -> tuple[list[Outcome], list[Check]]:
    response = endpoint.client().responses.compact(model=MODEL, input=_history())
    return [response], [_is_compacted(response, users=2)]


def with_instructions(endpoint: Endpoint) -> tuple[list[Outcome], list[Check]]:
    response = endpoint.client().responses.compact(
        model=MODEL,
        input=_history(),
        instructions="Keep prices and opening hours; drop small talk.",
    )
    return [response], [_is_compacted(response, users=2)]


def chain(endpoint: Endpoint) -> tuple[list[Outcome], list[Check]]:
    client = endpoint.client()
    first = client.responses.compact(model=MODEL, input=_history())
    second = client.responses.compact(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"role": "user", "content": "Can I book the repair for Saturday?"}],
    )
    # Continue from the compaction item alone: its sealed state carries the whole conversation.
    item = second.output[-1].model_dump(mode="json", exclude_none=True)
    follow_up: list[Any] = [item, {"role": "user", "content": "Thanks, see you then."}]
    third = client.responses.compact(model=MODEL, input=follow_up)
    cached = second.usage.input_tokens_details.cached_tokens if second.usage else 0
    grew = bool(
        second.usage and third.usage and third.usage.input_tokens > second.usage.input_tokens
    )
    checks = [
        _is_compacted(first, users=2),
        (cached > 0, f"{second.id} continues {first.id}: cached_tokens > 0"),
        _is_compacted(third, users=1),
        (grew, f"{third.id} unpacks the compaction item: more input tokens than {second.id}"),
    ]
    return [first, second, third], checks


def azure(endpoint: Endpoint) -> tuple[list[Outcome], list[Check]]:
    # Azure OpenAI's v1 route: /openai/v1 prefix, an api-key header, a deployment name as model.
    client = endpoint.client("/openai/v1", headers={"api-key": DEMO_KEY})
    response = client.responses.compact(model="shop-assistant-deployment", input=_history())
    return [response], [_is_compacted(response, users=2)]


def rate_limited(endpoint: Endpoint) -> tuple[list[Outcome], list[Check]]:
    import openai

    from ..server import FAULT_HEADER

    client = endpoint.client(headers={FAULT_HEADER: RATE_LIMIT_FAULT})
    try:
        response = client.responses.compact(model=MODEL, input=_history())
    except openai.APIStatusError as exc:
        outcome = ErrorOutcome(
            type(exc).__name__, exc.status_code, exc.body, exc.response.headers.get("retry-after")
        )
        check = (
            isinstance(exc, openai.RateLimitError) and outcome.retry_after == "0",
            "the SDK raises RateLimitError with retry-after: 0",
        )
        return [outcome], [check]
    return [response], [(False, "the SDK raises RateLimitError (it got a response)")]


# A threshold the fourth turn of server_side crosses (the minimum the API accepts is 1000).
CONTEXT_MANAGEMENT = [{"type": "compaction", "compact_threshold": 1000}]
_TRIP = "Plan a three-day ride along the coast, with a stop for lunch each day and a bed. " * 6


def server_side(endpoint: Endpoint) -> tuple[list[Outcome], list[Check]]:
    """Streamed turns with server-side compaction, chained statelessly.

    The client appends each answer's output to its input and keeps only the items from the most
    recent compaction item on (what the chaining contract allows); the cassette's exchanges are
    checked against that contract when the block ends.
    """
    client = endpoint.client()
    items: list[Any] = [{"role": "user", "content": _TRIP}]
    outcomes: list[Outcome] = []
    answers: list[Any] = []
    for day in range(2, 7):
        stream = client.responses.create(
            model=MODEL,
            input=items,
            context_management=CONTEXT_MANAGEMENT,  # type: ignore[arg-type]
            stream=True,
        )
        events: list[Any] = list(stream)
        answer = events[-1].response if events[-1].type == "response.completed" else None
        outcomes.append(([e.type for e in events], answer))
        if answer is None:
            return outcomes, [(False, f"turn {len(answers) + 1} ends with response.completed")]
        answers.append(answer)
        items += [i.model_dump(mode="json", exclude_none=True) for i in answer.output]
        compactions = [n for n, i in enumerate(items) if i.get("type") == "compaction"]
        if compactions:
            items = items[compactions[-1] :]
        question = f"What about day {day}: where do we stop for lunch, and is there a hill? "
        items.append({"role": "user", "content": question * 7})
    kinds = [[i.type for i in a.output] for a in answers]
    first, last = answers[0].usage, answers[-1].usage
    checks = [
        (
            all(len(events) > 4 for events, _ in outcomes),
            "each turn streams event by event, ending with response.completed",
        ),
        (
            kinds == [["message"]] * 3 + [["message", "compaction"], ["message"]],
            "the fourth turn crosses compact_threshold 1000: a compaction item after its message",
        ),
        (
            bool(first and last and last.input_tokens > first.input_tokens),
            f"{answers[-1].id} gets the compaction item and one question, and the item carries "
            "the earlier turns: more input tokens than the first turn",
        ),
    ]
    return outcomes, checks


@dataclass(frozen=True)
class Scenario:
    name: str  # also the cassette's file stem
    what: str
    run: Callable[[Endpoint], tuple[list[Outcome], list[Check]]]
    dialect: str = "openai"


SCENARIOS = (
    Scenario("plain", "compact a short conversation", plain),
    Scenario("instructions", "compact with instructions", with_instructions),
    Scenario(
        "chain",
        "previous_response_id chain, then the compaction item passed back as input",
        chain,
    ),
    Scenario(
        "azure",
        "Azure OpenAI dialect: /openai/v1 route, api-key header, deployment name",
        azure,
        "azure",
    ),
    Scenario("error-429", "rate limited: 429 with retry-after, an error exchange", rate_limited),
    Scenario(
        "server-side",
        "POST /responses streamed with context_management: compaction inside a turn, chained",
        server_side,
    ),
)


# ---------------------------------------------------------------------------------------------
# Running: record against the live server, then replay with the network blocked.


@dataclass
class Result:
    scenario: Scenario
    cassette: Path
    recorded: int = 0
    replayed: int = 0
    validated: int = 0
    violations: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    same: bool = False

    @property
    def ok(self) -> bool:
        return self.same and not self.problems and not self.violations


def _canonical_origin(request: Any) -> Any:
    """Record the fixed origin in place of the server's free port (uri and host header)."""
    parts = urlsplit(request.uri)
    request.uri = urlunsplit(urlsplit(RECORDED_ORIGIN)[:2] + parts[2:])
    headers = dict(request.headers.items())  # a new mapping: the live request keeps its own
    for name in headers:
        if name.lower() == "host":
            headers[name] = urlsplit(RECORDED_ORIGIN).netloc
    request.headers = headers
    return request


@contextlib.contextmanager
def _closing(endpoint: Endpoint) -> Iterator[Endpoint]:
    try:
        yield endpoint
    finally:
        endpoint.close()


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and not isinstance(exc, type(cause)):
        text += f" (caused by {type(cause).__name__}: {cause})"
    return text


def _phase(result: Result, path: Path, endpoint: Endpoint, phase: str) -> list[Outcome] | None:
    """Record (``phase`` "record") or replay one scenario; the outcomes, or None on a problem."""
    from ..replay._recorder import use_cassette
    from ..server._server import FIXED_CREATED_AT

    outcomes: list[Outcome] | None = None
    rec: Recording | None = None
    failed = len(result.problems) + len(result.violations)
    try:
        with use_cassette(
            path,
            record_mode="all" if phase == "record" else "none",
            # The deterministic server's time: re-running the demo writes the same bytes.
            recorded_at=datetime.fromtimestamp(FIXED_CREATED_AT, UTC),
            before_record_request=_canonical_origin,
            # Recorded, replayed and validated under the scenario's gateway dialect profile.
            dialect=result.scenario.dialect,
            raise_on_exit=False,
        ) as rec:
            outcomes, checks = result.scenario.run(endpoint)
        result.problems += [f"{phase}: expected {what}" for ok, what in checks if not ok]
    except Exception as exc:  # reported in the summary: the demo must end with a verdict
        result.problems.append(f"{phase} stopped: {_describe(exc)}")
    if rec is not None:
        result.validated += rec.validated
        result.violations += [f"{phase}: {v}" for v in rec.violations]
        result.drift += [note for note in rec.drift if note not in result.drift]
        result.problems += [f"{phase}: {p}" for p in rec.problems]
        if phase == "record":
            result.recorded = rec.recorded
        else:
            result.replayed = rec.replayed
    if len(result.problems) + len(result.violations) > failed:
        return None
    return outcomes


def _compare(recorded: list[Outcome], replayed: list[Outcome]) -> str | None:
    if len(recorded) != len(replayed):
        return f"recorded {len(recorded)} outcome(s), replay gave {len(replayed)}"
    for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
        if a != b:
            return f"outcome {i} differs: recorded {a!r}, replayed {b!r}"
    return None


GITIGNORE = ".gitignore"
GITIGNORE_TEXT = b"# Written by pytest-compaction demo: its cassettes stay out of git.\n*\n"
# What the demo leaves in its folder: cassettes, and the hidden files of its writes and checks.
_OWN_PREFIXES = (".recording-", ".write-check.", f"{GITIGNORE}.")


def _demo_writes(name: str) -> bool:
    return (
        name in {f"{s.name}.yaml" for s in SCENARIOS}
        or name == GITIGNORE
        or name.startswith(_OWN_PREFIXES)
    )


def ignore_folder(out: Path) -> str:
    """Keep the demo's folder out of ``git status``: a ``.gitignore`` of ``*`` in ``out``.

    Written atomically, and only where it hides nothing else: when ``out`` holds no more than
    what the demo writes. A ``.gitignore`` already there is kept as it is; a folder with other
    files (a project's own folder, a repository's root) gets none. Written inside or outside a
    repository alike. Returns the line the summary prints about it.
    """
    target = out / GITIGNORE
    try:
        others = sorted(name for name in os.listdir(out) if not _demo_writes(name))
        if others:
            return (
                f"no {GITIGNORE} written: {out} holds files the demo did not write "
                f"({', '.join(others[:3])}{', ...' * (len(others) > 3)}), which * would hide"
            )
        if not create_atomic(target, GITIGNORE_TEXT) and target.read_bytes() != GITIGNORE_TEXT:
            return f"{target} kept as it was (not the demo's own)"
    except OSError as exc:
        return f"{target} not written: {exc.strerror or exc}"
    return f"{target} (*) keeps the cassettes out of git status"


@dataclass
class DemoRun:
    results: list[Result]
    server_url: str
    schema_versions: list[str]
    sdk_version: str
    connection_attempts: list[str]
    secret_findings: list[str]
    gitignore: str = ""  # what :func:`ignore_folder` did

    @property
    def ok(self) -> bool:
        return (
            all(r.ok for r in self.results)
            and not self.connection_attempts
            and not self.secret_findings
        )


def run_demo(out: Path) -> DemoRun:
    """Record every scenario into ``out`` (a folder), stop the server, replay offline, validate."""
    from importlib.metadata import version

    from ..cassette._exchange import CassetteError
    from ..cassette._file import load_cassette
    from ..cassette._secrets import scan_exchange
    from ..server import CompactionServer

    ignored = ignore_folder(out)
    results = [Result(s, out / f"{s.name}.yaml") for s in SCENARIOS]
    recorded: dict[str, list[Outcome]] = {}
    # Recorded into a staging folder and moved into place only when complete and valid, so a
    # failed run leaves earlier cassettes as they were and a damaged one cannot block a new run.
    dialects = sorted({s.dialect for s in SCENARIOS})
    with contextlib.ExitStack() as stack:
        staging = stack.enter_context(tempfile.TemporaryDirectory(prefix=".recording-", dir=out))
        # One server per dialect, each speaking that gateway's wire.
        servers = {
            d: stack.enter_context(CompactionServer(deterministic=True, dialect=d))
            for d in dialects
        }
        live = {d: stack.enter_context(_closing(Endpoint(servers[d].url))) for d in dialects}
        for result in results:
            staged = Path(staging) / result.cassette.name
            outcomes = _phase(result, staged, live[result.scenario.dialect], "record")
            if outcomes is None:
                continue
            try:
                os.replace(staged, result.cassette)
            except OSError as exc:
                result.problems.append(
                    f"record: {result.cassette} was not written: {exc.strerror or exc}"
                )
                continue
            recorded[result.scenario.name] = outcomes
        urls = {d: servers[d].url for d in dialects}
    server_url = urls["openai"] if "openai" in urls else next(iter(urls.values()))
    # The servers are down and sockets refuse to connect: a replay that passes used no network.
    with contextlib.ExitStack() as stack:
        attempts = stack.enter_context(block_network(reason="the demo replays offline"))
        stopped = {d: stack.enter_context(_closing(Endpoint(urls[d]))) for d in dialects}
        for result in results:
            before = recorded.get(result.scenario.name)
            if before is None:
                continue
            again = _phase(result, result.cassette, stopped[result.scenario.dialect], "replay")
            if again is None:
                continue
            difference = _compare(before, again)
            if difference is None:
                result.same = True
            else:
                result.problems.append(f"replay: {difference}")
    findings: list[str] = []
    versions: set[str] = set()
    for result in results:
        if result.scenario.name not in recorded:
            continue
        try:
            data = load_cassette(result.cassette)
        except CassetteError as exc:
            result.problems.append(f"cassette: {exc}")
            continue
        versions.add(str(data.schema_version))
        findings += [
            f"{result.cassette}: {finding}"
            for i, exchange in enumerate(data.exchanges)
            for finding in scan_exchange(exchange, i)
        ]
    return DemoRun(
        results=results,
        server_url=server_url,
        schema_versions=sorted(versions),
        sdk_version=version("openai"),
        connection_attempts=attempts,
        secret_findings=findings,
        gitignore=ignored,
    )
