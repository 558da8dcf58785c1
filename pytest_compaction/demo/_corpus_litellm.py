"""``pytest-compaction corpus --litellm-proxy``: the corpus's ``litellm-proxy/`` folder.

The cassettes there are recorded through the real LiteLLM proxy (``litellm[proxy]``, found
beside the running interpreter) in front of a fresh deterministic embedded server: the proxy
runs on 127.0.0.1 with a master key (so it seals every response id, as it does by default), no
database, the local price list, an environment without proxies, databases or keys, and a
socket audit hook that refuses any connection or name lookup off the loopback interface. The
openai SDK records through it under the ``litellm`` dialect, which each cassette's head names.

LiteLLM seals response ids with a random nonce, so two recordings never have the same bytes:
:func:`check_litellm` compares a fresh recording with a folder by the ``diff`` engine
(``check._diff``: ids, encrypted tokens, timestamps and usage counts normalised) and by verdict,
and the folder's README by its bytes (it holds nothing that varies). The default corpus run
neither records nor reads this folder.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import write_atomic
from .._errors import counted
from ._corpus import LITELLM_FOLDER, PASS, CorpusError, Verdict, corpus_version, verdict_of
from ._demo import _canonical_origin

if TYPE_CHECKING:
    import openai

    from ..check._diff import DiffResult

FOLDER = LITELLM_FOLDER  # under the corpus folder
README = "README.md"
HEADLINE = (
    "# The cassettes/litellm-proxy/ corpus (generated: `pytest-compaction corpus "
    "--litellm-proxy`, do not edit)"
)
MODEL = "gpt-5.4"
MASTER_KEY = "sk-proxy-master-0123456789"
UPSTREAM_KEY = "sk-upstream-0123456789"
STARTUP_TIMEOUT = 180.0  # seconds; a cold start on two busy cores has taken over 30
STOP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 60.0
INSTALL = "python -m pip install -e '.[dev]'"

HISTORY: Any = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And 3+3?"},
]
# LiteLLM and the API refuse a compact_threshold under 1000 tokens; the embedded server counts
# a quarter of the bytes, so this is past it.
LONG_HISTORY: Any = [
    {"role": "user", "content": "What is 2+2? " + "Please be precise. " * 300},
    *HISTORY[1:],
]
THRESHOLD: Any = [{"type": "compaction", "compact_threshold": 1000}]

# Variables that could point the proxy elsewhere: another interpreter's modules, an HTTP proxy,
# a database, a cache, a license server or a real OpenAI account.
_DROPPED_ENV = frozenset(
    {
        "pythonpath",
        "pythonhome",
        "pythonstartup",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "database_url",
        "direct_url",
        "redis_host",
        "redis_url",
        "litellm_license",
        "openai_api_key",
        "openai_base_url",
        "openai_api_base",
        "litellm_master_key",
        "litellm_salt_key",
    }
)

# Runs the proxy's console script under a socket audit hook: a connection or a name lookup
# off the loopback interface is logged and refused.
_LAUNCHER = r"""
import ipaddress, runpy, sys

log = open(sys.argv.pop(1), "a", buffering=1)
script = sys.argv.pop(1)

def local(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or str(host).lower() in ("", "localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False

def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and not local(args[1][0]):
        log.write(f"refused connect {args[1][0]}:{args[1][1]}\n")
        raise PermissionError(f"off-loopback connection refused: {args[1][0]}")
    if event == "socket.getaddrinfo" and not local(args[0]):
        log.write(f"refused getaddrinfo {args[0]!r}\n")
        raise PermissionError(f"off-loopback name lookup refused: {args[0]!r}")

sys.addaudithook(hook)
sys.argv[0] = script
runpy.run_path(script, run_name="__main__")
"""


class LiteLLMMissing(CorpusError):
    """The LiteLLM proxy is not installed beside the running interpreter."""


def proxy_executable() -> Path:
    """The ``litellm`` console script of this environment (it may not exist)."""
    return Path(sys.executable).parent / "litellm"


def require_proxy() -> Path:
    """The proxy's console script; :class:`LiteLLMMissing` (one line) when it is not there."""
    script = proxy_executable()
    if not script.is_file():
        raise LiteLLMMissing(
            f"the LiteLLM proxy is not installed: no {script}; install it with {INSTALL} "
            "(the dev extra pins litellm[proxy])"
        )
    return script


def proxy_env() -> dict[str, str]:
    """This environment without what could send the proxy off the machine, and the settings
    that keep it local (the bundled price list, no ``.env`` loading)."""
    import os

    env = {k: v for k, v in os.environ.items() if k.lower() not in _DROPPED_ENV}
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # else the price list is downloaded at import
        LITELLM_MODE="PRODUCTION",  # else a .env file found on the way up is loaded
        LITELLM_LOG="ERROR",
        NO_PROXY="*",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return " | ".join(text.splitlines()[-lines:]) or "(nothing on stderr)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it does not exit in time; bounded either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


@dataclass(frozen=True)
class RunningProxy:
    """A started proxy: its URL and the log of what its audit hook refused."""

    url: str
    netlog: Path

    def refused(self) -> list[str]:
        text = self.netlog.read_text(errors="replace") if self.netlog.exists() else ""
        return [line for line in text.splitlines() if line.startswith("refused")]


@contextlib.contextmanager
def running_proxy(upstream: str, workdir: Path) -> Iterator[RunningProxy]:
    """The proxy on a free 127.0.0.1 port routing ``openai/<MODEL>`` to ``upstream``; stopped
    on exit. :class:`CorpusError` when it exits or does not answer within the startup bound."""
    import yaml

    script = require_proxy()
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": upstream,
                    "api_key": UPSTREAM_KEY,
                },
            }
        ],
        # With a master key LiteLLM seals every response id (response id security).
        "general_settings": {"master_key": MASTER_KEY},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    netlog = workdir / "net.log"
    stderr = workdir / "proxy.stderr"
    command = [sys.executable, "-c", _LAUNCHER, str(netlog), str(script)]
    command += ["--config", "config.yaml", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--num_workers", "1"]
    with (workdir / "proxy.stdout").open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=proxy_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise CorpusError(
                    f"the LiteLLM proxy exited with status {proc.returncode} before it was "
                    f"ready: {_tail(stderr)}"
                )
            try:
                with urllib.request.urlopen(url + "/health/liveliness", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > STARTUP_TIMEOUT:
                raise CorpusError(
                    f"the LiteLLM proxy did not answer /health/liveliness within "
                    f"{STARTUP_TIMEOUT:.0f} s: {_tail(stderr)}"
                )
            time.sleep(0.25)
        yield RunningProxy(url, netlog)
    finally:
        _stop(proc)


# ---------------------------------------------------------------------------------------------
# What is recorded.


def _dumped(items: Any) -> Any:
    return [i.model_dump(mode="json", exclude_none=True, warnings=False) for i in items]


def _expect_error(call: Callable[[], Any], status: int) -> None:
    import openai

    try:
        call()
    except openai.APIStatusError as exc:
        if exc.status_code != status:
            raise CorpusError(f"expected HTTP {status}, got {exc.status_code}") from None
        return
    raise CorpusError(f"expected HTTP {status}, got an answer")


def compact_chain(sdk: openai.OpenAI) -> None:
    """Compact; again statelessly from its output; again by the proxy's sealed id."""
    first = sdk.responses.compact(model=MODEL, input=HISTORY, instructions="Be brief.")
    second = sdk.responses.compact(
        model=MODEL, input=[*_dumped(first.output), {"role": "user", "content": "And 4+4?"}]
    )
    sdk.responses.compact(
        model=MODEL,
        input=[{"role": "user", "content": "And 5+5?"}],
        previous_response_id=second.id,
    )


def errors(sdk: openai.OpenAI) -> None:
    """LiteLLM's own error (an unknown model) and an upstream one it passes on (a forged
    compaction item)."""
    forged: Any = {"type": "compaction", "id": "cmp_forged", "encrypted_content": "forged"}
    _expect_error(lambda: sdk.responses.compact(model="no-such-model", input=HISTORY), 400)
    _expect_error(lambda: sdk.responses.compact(model=MODEL, input=[forged]), 400)


def streamed_compaction(sdk: openai.OpenAI) -> None:
    """POST /responses streamed past compact_threshold: a message, then a compaction item."""
    events = list(
        sdk.responses.create(
            model=MODEL, input=LONG_HISTORY, stream=True, context_management=THRESHOLD
        )
    )
    if not events or events[-1].type != "response.completed":
        raise CorpusError("the stream through the proxy did not end with response.completed")
    kinds = [item.type for item in events[-1].response.output]
    if kinds != ["message", "compaction"]:
        raise CorpusError(f"expected a message and a compaction item, got {kinds}")


@dataclass(frozen=True)
class LiteLLMEntry:
    """One cassette of ``litellm-proxy/``: its name, what it shows, how, and its verdict."""

    name: str
    what: str
    steps: Callable[[openai.OpenAI], None]
    expect: Verdict = PASS


def litellm_entries() -> list[LiteLLMEntry]:
    """Every cassette of ``litellm-proxy/``, in the order they are recorded and listed."""
    return [
        LiteLLMEntry(
            "compact-chain.yaml",
            "compact (with instructions), compact again from its output, then by the "
            "proxy's sealed id (previous_response_id)",
            compact_chain,
        ),
        LiteLLMEntry(
            "errors.yaml",
            "400 for an unknown model (LiteLLM's own error), 400 invalid_encrypted_content "
            "from the upstream as LiteLLM passes it on",
            errors,
        ),
        LiteLLMEntry(
            "server-side-compaction-stream.yaml",
            "POST /responses streamed past compact_threshold: the compaction item after the "
            "message, LiteLLM's stream ending (`[DONE]`)",
            streamed_compaction,
        ),
    ]


@dataclass
class LiteLLMRun:
    """A recording of ``litellm-proxy/``: the files (name -> bytes) and what went wrong."""

    files: dict[str, bytes] = field(default_factory=dict)
    exchanges: dict[str, int] = field(default_factory=dict)
    strict: dict[str, bool] = field(default_factory=dict)  # passes ``check --strict``
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def build_litellm(entries: list[LiteLLMEntry] | None = None) -> LiteLLMRun:
    """Record every entry through one proxy in front of one fresh deterministic server, check
    each cassette's verdict, and make the README. :class:`LiteLLMMissing` when the proxy is not
    installed, :class:`CorpusError` when it does not start; a failed entry is a problem."""
    import openai

    from ..cassette._file import parse_cassette
    from ..replay._recorder import use_cassette
    from ..server import CompactionServer

    require_proxy()
    chosen = entries if entries is not None else litellm_entries()
    run = LiteLLMRun()
    version = corpus_version()
    with (
        tempfile.TemporaryDirectory(prefix="pytest-compaction-litellm-") as work,
        CompactionServer(deterministic=True, schema_version=version) as server,
        running_proxy(server.base_url, Path(work)) as proxy,
    ):
        sdk = openai.OpenAI(
            base_url=proxy.url + "/v1",
            api_key=MASTER_KEY,
            max_retries=0,  # each request is one exchange
            timeout=REQUEST_TIMEOUT,
        )
        try:
            for entry in chosen:
                path = Path(work) / entry.name
                try:
                    with use_cassette(
                        path,
                        record_mode="rewrite",
                        version=version,
                        before_record_request=_canonical_origin,
                        dialect="litellm",
                        raise_on_exit=False,
                    ) as rec:
                        entry.steps(sdk)
                    if rec.problems:
                        raise CorpusError(str(rec.problems[0]))
                    text = path.read_text(encoding="utf-8")
                    data = parse_cassette(text, entry.name)
                    verdict = verdict_of(data)
                    if verdict != entry.expect:
                        raise CorpusError(
                            f"expected verdict {entry.expect.text()!r}, got {verdict.text()!r}"
                        )
                    if MASTER_KEY in text or UPSTREAM_KEY in text:
                        raise CorpusError("a proxy key is in the recording")
                except Exception as exc:  # reported: the run ends with a verdict per file
                    run.problems.append(f"{entry.name}: {' '.join(str(exc).split())}")
                    continue
                run.files[entry.name] = text.encode("utf-8")
                run.exchanges[entry.name] = len(data.exchanges)
                run.strict[entry.name] = _passes_strictly(data, entry.name)
        finally:
            sdk.close()
        refused = proxy.refused()
    if refused:
        run.problems.append(f"the proxy tried to leave the loopback interface: {refused[0]}")
    run.files[README] = readme(chosen, run).encode("utf-8")
    return run


def _passes_strictly(data: Any, name: str) -> bool:
    from ..check._run import _Versions, check_cassette_data

    result = check_cassette_data(data, name, _Versions(None, None), strict=True)
    return result.error is None and result.passed


def readme(entries: list[LiteLLMEntry], run: LiteLLMRun) -> str:
    """The folder's README: every file, what it shows, its exchanges and verdict."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("litellm")
    except PackageNotFoundError:  # the proxy ran, so this is a broken install; say so
        release = "unknown"
    lines = [
        HEADLINE,
        "",
        f"Recorded through the real LiteLLM proxy (litellm {release}) on 127.0.0.1 in front "
        "of a fresh deterministic embedded server, with the openai SDK, under the `litellm` "
        "dialect (named in each cassette's head). LiteLLM seals response ids with a random "
        "nonce, so a re-record never has the same bytes: these files are checked by shape, "
        "not bytes, and are not in `../SHA256SUMS`.",
        "",
        "- Re-record: `pytest-compaction corpus --litellm-proxy --out cassettes`",
        "- Compare with a fresh recording: `pytest-compaction corpus --litellm-proxy --out "
        "cassettes --check` (the `diff` engine: ids, encrypted tokens, timestamps and usage "
        "counts normalised; and each verdict)",
        "- Judge: `pytest-compaction check cassettes/litellm-proxy` (the verdicts below; "
        "`--strict` adds what the `litellm` profile does not declare, the last column)",
        "",
        "| file | shows | exchanges | verdict | under --strict |",
        "|---|---|---|---|---|",
    ]
    for entry in entries:
        count = run.exchanges.get(entry.name)
        shown = "-" if count is None else str(count)
        strict = {True: "pass", False: "FAIL", None: "-"}[run.strict.get(entry.name)]
        lines.append(
            f"| `{entry.name}` | {entry.what} | {shown} | {entry.expect.text()} | {strict} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Writing and checking.


def write_litellm(folder: Path, files: dict[str, bytes]) -> list[str]:
    """Write ``files`` into ``folder`` atomically; the names written (nothing else touched).

    The folder is the command's when its README.md opens with :data:`HEADLINE` (or it has
    none); otherwise a file the run would replace stops it with a CorpusError naming it.
    """
    readme = folder / "README.md"
    try:
        ours = not readme.exists() or readme.read_text(encoding="utf-8").startswith(HEADLINE)
    except (OSError, UnicodeDecodeError):
        ours = False
    if not ours:
        foreign = sorted(name for name in files if (folder / name).exists())
        if foreign:
            raise CorpusError(
                f"{folder}: {', '.join(foreign)} would be replaced, and {readme.name} there was "
                "not written by this command; move them, or write to another folder"
            )
    written = []
    for name, data in sorted(files.items()):
        target = folder / name
        try:
            same = target.is_file() and target.read_bytes() == data
        except OSError:
            same = False
        if not same:
            write_atomic(target, data)
            written.append(name)
    return written


@dataclass
class LiteLLMCheck:
    """A folder compared with a fresh recording: one line per difference."""

    differences: list[str] = field(default_factory=list)
    normalised: int = 0  # value changes set aside (ids, tokens, timestamps, usage counts)

    @property
    def same(self) -> bool:
        return not self.differences


# The diff engine's verdict changes, with the folder as the old side.
_VERDICTS = {
    "now failing": "verdict: passes in the folder, fails in a fresh recording",
    "now passing": "verdict: fails in the folder, passes in a fresh recording",
}


def _lines(result: DiffResult, folder: Path) -> list[str]:
    """One line per difference, each naming the file; a change reads folder -> fresh."""
    out = []
    for cassette in result.cassettes:
        where = folder / cassette.path
        if cassette.presence == "old only":
            out.append(f"{where}: not recorded any more")
            continue
        if cassette.presence == "new only":
            out.append(f"{where}: missing (recorded, not in the folder)")
            continue
        if cassette.old_version != cassette.new_version:
            out.append(f"{where}: version {cassette.old_version} -> {cassette.new_version}")
        if cassette.chain_verdict is not None:
            out.append(f"{where}: chaining rules: {_VERDICTS[cassette.chain_verdict]}")
        for ex in cassette.exchanges:
            head = f"{where}: {ex.name}"
            if ex.presence != "both":
                out.append(f"{head}: {ex.presence}")
            if ex.old_route != ex.new_route:
                out.append(f"{head}: route {ex.old_route} -> {ex.new_route}")
            if ex.status_changed:
                out.append(f"{head}: status {ex.old_status} -> {ex.new_status}")
            out += [f"{head}: {change}" for change in ex.changes]
            if ex.verdict is not None:
                broken = f" ({ex.violations[0]})" if ex.violations else ""
                out.append(f"{head}: {_VERDICTS[ex.verdict]}{broken}")
    return out


def check_litellm(folder: Path, run: LiteLLMRun) -> LiteLLMCheck:
    """Compare ``folder`` (the committed ``litellm-proxy/``) with a fresh recording: each
    cassette by the ``diff`` engine (normalised, judged strictly under its dialect), the README
    by its bytes."""
    from ..check._diff import diff_paths

    found = LiteLLMCheck()
    with tempfile.TemporaryDirectory(prefix="pytest-compaction-litellm-check-") as fresh:
        write_litellm(Path(fresh), run.files)
        if not folder.is_dir():
            found.differences.append(f"{folder}: no such directory to check")
            return found
        try:
            result = diff_paths(folder, fresh, strict=True)
        except Exception as exc:  # a folder without cassettes, a broken file: named, one line
            found.differences.append(" ".join(str(exc).split()))
            return found
        found.differences += _lines(result, folder)
        found.normalised = result.summary()["normalised"]
        readme_path = folder / README
        try:
            same = readme_path.is_file() and readme_path.read_bytes() == run.files[README]
        except OSError:
            same = False
        if not same:
            found.differences.append(f"{readme_path}: differs from the generated README")
    return found


def summary(run: LiteLLMRun, seconds: float) -> str:
    cassettes = len(run.exchanges)
    total = sum(run.exchanges.values())
    return (
        f"{counted(cassettes, 'cassette')} ({counted(total, 'exchange')}) recorded through "
        f"the LiteLLM proxy in {seconds:.1f} s"
    )
