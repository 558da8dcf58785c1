"""The LiteLLM SDK's ``compact_responses`` under the recorder, in a process of its own.

Started by tests/clients/test_litellm.py with the project's interpreter (the dev extra brings
litellm), which owns the embedded servers and checks what this leaves behind:

    python sdk_session.py record|replay CASSETTE_DIR REPORT.json NAME=URL...

Each URL is the ``api_base`` of an embedded server (``sync``, ``broken``, ``async`` and
``dialect``; the last speaks the LiteLLM dialect). ``record`` records every scenario into
CASSETTE_DIR; ``replay`` plays them back with the servers stopped (record mode ``none``). The
report holds, per scenario, the recorder's counts and findings, what the SDK returned, and every
connection and non-local name lookup the process made. Exit status 0: every scenario ran.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# -- network watch: installed before anything that could open a socket ------------------------

# Audit hooks cannot be removed: this one records only while a watch is open.
_watches: list[list[str]] = []


def is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return host is None  # getaddrinfo(None, port): the local wildcard, no lookup
    if host.lower() in ("localhost", "localhost.", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _watches:
        return
    if event == "socket.connect" and isinstance(args[1], tuple):
        where = "loopback" if is_loopback(args[1][0]) else "outside"
        _watches[-1].append(f"{where} connect {args[1][0]}:{args[1][1]}")
    elif event == "socket.getaddrinfo" and not is_loopback(args[0]):
        _watches[-1].append(f"outside getaddrinfo {args[0]!r}")


sys.addaudithook(_audit)


@contextmanager
def network_watch() -> Iterator[list[str]]:
    seen: list[str] = []
    _watches.append(seen)
    try:
        yield seen
    finally:
        _watches.remove(seen)


# Without this, importing litellm downloads its model price list from the internet.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# litellm builds pydantic models from TypedDicts with ReadOnly items and warns about each.
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydantic\._internal\.")

with network_watch() as IMPORT_SEEN:
    import litellm

    from pytest_compaction.replay._recorder import Recording, use_cassette

litellm.suppress_debug_info = True  # no "Give Feedback" banner on every error

MODEL = "openai/gpt-5.4"
API_KEY = "sk-test-litellm-sdk-0123456789"
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
UNUSED_BASE = "http://127.0.0.1:9/v1"  # the discard port: nothing answers there


# -- what goes into the report ----------------------------------------------------------------


def items_of(response: Any) -> list[dict[str, Any]]:
    """Output items as a client sends them back (LiteLLM's objects carry ``None`` fields)."""
    return [
        item if isinstance(item, dict) else item.model_dump(exclude_none=True, warnings=False)
        for item in response.output
    ]


def dumped(response: Any) -> dict[str, Any]:
    out: dict[str, Any] = response.model_dump(mode="json", warnings=False)
    return out


def error_of(exc: Exception) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "status_code": getattr(exc, "status_code", None),
        "message": str(exc),
    }


def recording_of(rec: Recording, *, check_played: bool = False) -> dict[str, Any]:
    unplayed = None
    if check_played:
        try:
            rec.assert_all_played()
        except AssertionError as exc:
            unplayed = str(exc)
    return {
        "record_mode": rec.record_mode,
        "recorded": rec.recorded,
        "replayed": rec.replayed,
        "validated": rec.validated,
        "violations": list(rec.violations),
        "problems": list(rec.problems),
        "dialect": rec.dialect,
        "unplayed": unplayed,
    }


# -- scenarios --------------------------------------------------------------------------------


def run_chain(api_base: str) -> dict[str, Any]:
    """Compact; again statelessly from its output; again by its id; then a tampered token."""
    options = {"model": MODEL, "api_base": api_base, "api_key": API_KEY}
    first = litellm.compact_responses(input=HISTORY, instructions="Be brief.", **options)
    second = litellm.compact_responses(
        input=[*items_of(first), {"role": "user", "content": "And 4+4?"}], **options
    )
    third = litellm.compact_responses(
        input=[{"role": "user", "content": "And 5+5?"}],
        previous_response_id=second.id,
        **options,
    )
    tampered = {"type": "compaction", "id": "cmp_forged", "encrypted_content": "forged"}
    try:
        litellm.compact_responses(input=[tampered], **options)
    except litellm.BadRequestError as exc:
        error = error_of(exc)
    else:
        raise SystemExit("a forged compaction token was accepted")
    return {"responses": [dumped(r) for r in (first, second, third)], "error": error}


async def async_chain(api_base: str) -> dict[str, Any]:
    options = {"model": MODEL, "api_base": api_base, "api_key": API_KEY}
    first = await litellm.acompact_responses(input=HISTORY, **options)
    second = await litellm.acompact_responses(
        input=[{"role": "user", "content": "And 4+4?"}],
        previous_response_id=first.id,
        **options,
    )
    return {"responses": [dumped(first), dumped(second)]}


def drop_usage(response: dict[str, Any]) -> dict[str, Any]:
    """Spoil the recorded answer: ``usage`` is required."""
    body = json.loads(response["body"]["string"])
    del body["usage"]
    response["body"]["string"] = json.dumps(body).encode()
    return response


def scenario(
    cassette: Path,
    action: Callable[[], dict[str, Any]],
    *,
    check_played: bool = False,
    **options: Any,
) -> dict[str, Any]:
    with network_watch() as seen, use_cassette(cassette, **options) as rec:
        outcome = action()
    return {"recording": recording_of(rec, check_played=check_played), "seen": seen, **outcome}


def record(directory: Path, servers: dict[str, str]) -> dict[str, Any]:
    once: dict[str, Any] = {"record_mode": "once"}

    def broken() -> dict[str, Any]:
        answer = litellm.compact_responses(
            model=MODEL, input=HISTORY, api_base=servers["broken"], api_key=API_KEY
        )
        return {"responses": [dumped(answer)]}

    def unseen() -> dict[str, Any]:
        answer = asyncio.run(
            litellm.acompact_responses(
                model=MODEL, input=HISTORY, api_base=servers["async"], api_key=API_KEY
            )
        )
        return {"responses": [dumped(answer)]}

    return {
        "sync": scenario(
            directory / "litellm-sdk.yaml", lambda: run_chain(servers["sync"]), **once
        ),
        "broken": scenario(
            directory / "broken.yaml",
            broken,
            before_record_response=drop_usage,
            raise_on_exit=False,
            **once,
        ),
        # LiteLLM's async client hands requests to aiohttp: with vcrpy's aiohttp patch left
        # out, the call goes straight to the server and nothing is recorded.
        "unseen": scenario(directory / "unseen.yaml", unseen, skip_patchers=("aiohttp",), **once),
        "async": scenario(
            directory / "litellm-async.yaml",
            lambda: asyncio.run(async_chain(servers["async"])),
            **once,
        ),
        "dialect": scenario(
            directory / "litellm-dialect.yaml",
            lambda: run_chain(servers["dialect"]),
            dialect="litellm",
            **once,
        ),
    }


def replay(directory: Path, servers: dict[str, str]) -> dict[str, Any]:
    return {
        "sync": scenario(
            directory / "litellm-sdk.yaml", lambda: run_chain(servers["sync"]), check_played=True
        ),
        "async": scenario(
            directory / "litellm-async.yaml",
            lambda: asyncio.run(async_chain(servers["async"])),
            check_played=True,
        ),
        # Matching ignores host and port: any base URL finds the recorded exchanges.
        "dialect": scenario(
            directory / "litellm-dialect.yaml", lambda: run_chain(UNUSED_BASE), check_played=True
        ),
    }


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("record", "replay"):
        print(__doc__, file=sys.stderr)
        return 2
    phase, directory, report = argv[0], Path(argv[1]), Path(argv[2])
    servers = dict(arg.split("=", 1) for arg in argv[3:])
    steps = (record if phase == "record" else replay)(directory, servers)
    for name, step in steps.items():
        rec = step["recording"]
        print(f"{phase} {name}: recorded {rec['recorded']}, replayed {rec['replayed']}")
    result = {"phase": phase, "import_seen": IMPORT_SEEN, "steps": steps}
    report.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
