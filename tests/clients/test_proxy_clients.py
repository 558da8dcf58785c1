"""Clients in other languages through the proxy: curl, the openai package for Node.js, Perl's Mojo.

Each client records through the proxy against the embedded compaction server, then runs again
with the server stopped and the proxy replaying: it must get the same answer, and the cassette
must validate. A client whose runtime is missing is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from pytest_compaction import CompactionServer, validate_request, validate_response
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.proxy._proxy import CompactionProxy

CLIENTS = Path(__file__).parent
KEY = "sk-test-" + "c4" * 20
NODE_OPENAI = "6.30.1"  # the openai package for Node.js, pinned; it runs on Node 20
NODE_CACHE_ENV = "PYTEST_COMPACTION_NODE_CACHE"

# LiteLLM's documented call of /responses/compact, aimed at the proxy.
CURL_BODY = {
    "model": "openai/gpt-5.6-terra",
    "input": [{"role": "user", "content": "Hello"}],
    "instructions": "Be helpful",
}


def missing(reason: str) -> NoReturn:
    """Skip a client whose runtime is absent; under CI (``CI`` set), where it must run, fail."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def run_client(command: Sequence[str], env: dict[str, str]) -> Any:
    result = subprocess.run(
        list(command), env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{command[0]} failed: {result.stderr}\n{result.stdout}"
    return json.loads(result.stdout)


def record_and_replay(
    tmp_path: Path, command: Sequence[str], env: dict[str, str], *, keep: bool = False
) -> Path:
    """Run the client through a recording proxy, then through a replaying one, offline.

    ``keep`` writes the volatile request headers too (they say which SDK sent the request).
    """
    path = tmp_path / "client.yaml"
    with CompactionServer() as server:
        origin = server.url
        with CompactionProxy(origin, path, record_mode="once", keep_volatile_headers=keep) as proxy:
            recorded = run_client(command, {**env, "BASE": proxy.url})
        assert proxy.failure() is None
        assert (proxy.recorded, proxy.validated) == (1, 1)
        served = len(server.requests)
    assert served == 1
    assert recorded["object"] == "response.compaction"
    assert recorded["output"][-1]["type"] == "compaction"

    with CompactionProxy(origin, path, record_mode="none") as proxy:
        replayed = run_client(command, {**env, "BASE": proxy.url})
    assert proxy.failure() is None
    assert (proxy.replayed, proxy.recorded, proxy.validated) == (1, 0, 1)
    assert replayed == recorded

    text = path.read_text()
    assert KEY not in text
    (exchange,) = load_cassette(path).exchanges
    assert exchange.path == "/v1/responses/compact"
    assert exchange.request_headers[_key(exchange.request_headers, "authorization")] == ["REDACTED"]
    request = json.loads(exchange.request_body or b"")
    assert validate_request(request).valid
    assert validate_response(json.loads(exchange.response_body)).valid
    assert json.loads(exchange.response_body) == recorded
    return path


def _key(headers: dict[str, list[str]], name: str) -> str:
    return next(k for k in headers if k.lower() == name)


def test_curl_as_in_the_litellm_documentation(tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        missing("curl is not installed")
    script = (
        f'{curl} -sS --fail-with-body -X POST "$BASE/v1/responses/compact" '
        f"-H 'Authorization: Bearer {KEY}' -H 'Content-Type: application/json' "
        f"-d '{json.dumps(CURL_BODY)}'"
    )
    path = record_and_replay(tmp_path, ["sh", "-c", script], {})
    assert json.loads(load_cassette(path).exchanges[0].request_body or b"") == CURL_BODY


# -------------------------------------------------------------------------------------------------
# Node.js


def _node_cache() -> Path:
    raw = os.environ.get(NODE_CACHE_ENV)
    base = Path(raw) if raw else Path.home() / ".cache" / "pytest-compaction" / "node"
    return base / f"openai-{NODE_OPENAI}"


def _installed(root: Path) -> bool:
    manifest = root / "node_modules" / "openai" / "package.json"
    try:
        return bool(json.loads(manifest.read_text())["version"] == NODE_OPENAI)
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="session")
def node_openai() -> Path:
    """``node_modules`` holding the pinned openai package, installed from the npm registry once."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing("node and npm are needed for the Node.js client (apt-get install nodejs npm)")
    root = _node_cache()
    if not _installed(root):
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        command = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund"]
        command += ["--no-save", "--no-package-lock", "--loglevel=error"]
        # An unreachable registry fails within seconds instead of retrying for a minute.
        command += ["--fetch-retries=1", "--fetch-retry-mintimeout=1000"]
        command += ["--fetch-retry-maxtimeout=5000", f"openai@{NODE_OPENAI}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=240)
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            missing(f"npm install openai@{NODE_OPENAI} did not finish in 240 s")
        if result.returncode != 0 or not _installed(staging):
            shutil.rmtree(staging, ignore_errors=True)
            tail = " ".join((result.stderr or result.stdout).strip().splitlines()[:2])
            missing(f"npm could not install openai@{NODE_OPENAI} (registry unreachable?): {tail}")
        try:
            staging.rename(root)  # a concurrent install may have won; either copy is complete
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return root / "node_modules"


def test_the_openai_package_for_node(tmp_path: Path, node_openai: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    # The SDK reads OPENAI_BASE_URL; BASE is filled in with the proxy's URL by a shell.
    command = ["sh", "-c", f'OPENAI_BASE_URL="$BASE/v1" exec {node} {CLIENTS / "compact.cjs"}']
    env = {"NODE_PATH": str(node_openai), "OPENAI_API_KEY": KEY}
    path = record_and_replay(tmp_path, command, env, keep=True)
    headers = load_cassette(path).exchanges[0].request_headers
    assert headers[_key(headers, "x-stainless-lang")] == ["js"]
    assert headers[_key(headers, "x-stainless-package-version")] == [NODE_OPENAI]


# -------------------------------------------------------------------------------------------------
# Perl


def test_perl_mojo_useragent(tmp_path: Path) -> None:
    perl = shutil.which("perl")
    if perl is None:
        missing("perl is not installed")
    probe = subprocess.run([perl, "-MMojo::UserAgent", "-e1"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        missing("Mojo::UserAgent is not installed (apt-get install libmojolicious-perl)")
    script = f'OPENAI_BASE_URL="$BASE/v1" exec {perl} {CLIENTS / "compact.pl"}'
    path = record_and_replay(tmp_path, ["sh", "-c", script], {"OPENAI_API_KEY": KEY}, keep=True)
    headers = load_cassette(path).exchanges[0].request_headers
    assert headers[_key(headers, "user-agent")][0].startswith("Mojolicious")
