"""The record/replay proxy: modes, matching, misses, validation, secrets, streaming, TLS, signals.

Every test drives real HTTP on 127.0.0.1: a client talks to the proxy, the proxy to the embedded
compaction server or to a small stdlib upstream written here for what that server cannot do
(slow event streams, TLS, invalid or secret-bearing answers).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import Upstream, compaction_body
from support.loopback import Loopback, QuietHandler

from pytest_compaction import CompactionServer, validate_request, validate_response
from pytest_compaction.cassette._exchange import CassetteData, Exchange
from pytest_compaction.cassette._file import load_cassette, save_cassette
from pytest_compaction.cli import main
from pytest_compaction.proxy._proxy import MISS_STATUS, CompactionProxy, ProxyError

KEY = "sk-test-" + "p9" * 20
HISTORY = [
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "hi there"},
    {"role": "user", "content": "please summarize"},
]
BODY = {"model": "gpt-5.4", "input": HISTORY}
AUTH = {"authorization": f"Bearer {KEY}"}


def compact(base: str, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return httpx.post(
        base + "/responses/compact", json=body or BODY, headers={**AUTH, **headers}, timeout=30
    )


# -------------------------------------------------------------------------------------------------
# Record, then replay with the upstream gone


def test_record_then_replay_offline(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    with CompactionServer() as srv, CompactionProxy(srv.base_url, path, record_mode="once") as px:
        upstream_url = srv.base_url
        live = compact(px.url)
        other = httpx.get(px.url + "/models", headers=AUTH)
    assert live.status_code == 200 and live.headers["x-compaction-proxy"] == "recorded"
    assert other.status_code == 404  # the server's own answer, recorded too
    assert (px.recorded, px.replayed, px.validated, px.failure()) == (2, 0, 1, None)

    text = path.read_text()
    assert KEY not in text and "REDACTED" in text
    data = load_cassette(path)
    assert data.schema_version == px.version and data.dialect == "openai"
    first = data.exchanges[0]
    assert first.uri == upstream_url + "/responses/compact"
    assert json.loads(first.request_body or b"") == BODY
    assert validate_request(json.loads(first.request_body or b"")).valid
    assert validate_response(json.loads(first.response_body)).valid

    # The server is stopped: only the cassette can answer now.
    with CompactionProxy(upstream_url, path) as px:
        again = compact(px.url)
        other_again = httpx.get(px.url + "/models")
    assert again.status_code == 200 and again.headers["x-compaction-proxy"] == "replayed"
    assert again.json() == live.json()
    assert int(again.headers["content-length"]) == len(again.content)
    assert other_again.status_code == 404 and other_again.json() == other.json()
    assert (px.recorded, px.replayed, px.validated, px.failure()) == (0, 2, 1, None)
    assert not px.written


def test_a_miss_is_a_json_error_naming_the_cassette_and_the_closest_request(
    tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(upstream.base_url, path, record_mode="once") as px:
        compact(px.url)
        compact(px.url, {"model": "gpt-5.4", "input": [{"role": "user", "content": "other"}]})
    sent = len(upstream.requests)

    changed = {"model": "gpt-5.4", "input": [*HISTORY[:2], {"role": "user", "content": "CHANGED"}]}
    with CompactionProxy(upstream.base_url, path, record_mode="none") as px:
        miss = compact(px.url, changed)
        compact(px.url)
        repeat = compact(px.url)
    assert len(upstream.requests) == sent  # nothing passed through
    assert miss.status_code == MISS_STATUS
    assert miss.headers["x-compaction-proxy"] == "not-recorded"
    error, details = miss.json()["error"], miss.json()["compaction_proxy"]
    assert error["code"] == details["reason"] == "no_match"
    assert details["cassette"] == str(path)
    assert details["closest"]["index"] == 0
    assert details["closest"]["uri"] == upstream.base_url + "/responses/compact"
    assert "  /input/2/content: 'please summarize' != 'CHANGED'" in details["closest"]["diff"]
    assert str(path) in error["message"] and "CHANGED" in error["message"]
    assert repeat.status_code == MISS_STATUS
    assert repeat.json()["compaction_proxy"]["reason"] == "already_played"
    assert len(px.misses) == 2
    failure = px.failure() or ""
    assert "cannot be replayed" in failure and "Closest recorded request: exchange 0" in failure

    # A cassette that does not exist says so.
    with CompactionProxy(upstream.base_url, tmp_path / "missing") as px:
        absent = compact(px.url)
    assert absent.status_code == MISS_STATUS
    assert absent.json()["compaction_proxy"]["reason"] == "cassette_not_found"
    assert (
        "missing.yaml does not exist; record it with --record once"
        in absent.json()["error"]["message"]
    )
    assert not (tmp_path / "missing.yaml").exists()


def test_record_modes_follow_vcrpy(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    a, b = {"n": 1}, {"n": 2}
    with CompactionProxy(upstream.base_url, path, record_mode="once") as px:
        httpx.post(px.url + "/a", json=a)
    # once, cassette present: replay only
    with CompactionProxy(upstream.base_url, path, record_mode="once") as px:
        assert httpx.post(px.url + "/a", json=a).status_code == 200
        assert httpx.post(px.url + "/b", json=b).status_code == MISS_STATUS
    assert len(upstream.requests) == 1
    # new_episodes: replay what matches, record the rest
    with CompactionProxy(upstream.base_url, path, record_mode="new_episodes") as px:
        httpx.post(px.url + "/a", json=a)
        httpx.post(px.url + "/b", json=b)
    assert (px.replayed, px.recorded) == (1, 1)
    assert len(upstream.requests) == 2
    assert [e.path for e in load_cassette(path).exchanges] == ["/v1/a", "/v1/b"]
    # all: everything recorded again, replacing the exchanges it matches
    with CompactionProxy(upstream.base_url, path, record_mode="all") as px:
        fresh = httpx.post(px.url + "/a", json=a).json()
    assert (px.replayed, px.recorded) == (0, 1)
    exchanges = load_cassette(path).exchanges
    assert [e.path for e in exchanges] == ["/v1/b", "/v1/a"]
    assert (
        json.loads(exchanges[1].response_body)
        == fresh
        == {
            "object": "other",
            "path": "/v1/a",
            "n": 3,
        }
    )


def test_the_proxy_dates_its_cassettes_and_keeps_the_date_of_kept_exchanges(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01T00:00:00Z
    with CompactionProxy(upstream.base_url, path, record_mode="once") as px:
        httpx.post(px.url + "/a", json={"n": 1})
    assert yaml.safe_load(path.read_text())["compaction"]["recorded_at"] == "2026-01-01T00:00:00Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767312000")  # a day later
    # new_episodes keeps the loaded exchange: the file keeps its date
    with CompactionProxy(upstream.base_url, path, record_mode="new_episodes") as px:
        httpx.post(px.url + "/b", json={"n": 2})
    assert yaml.safe_load(path.read_text())["compaction"]["recorded_at"] == "2026-01-01T00:00:00Z"
    # rewrite holds this run's exchanges only: dated now
    with CompactionProxy(upstream.base_url, path, record_mode="rewrite") as px:
        httpx.post(px.url + "/a", json={"n": 1})
    assert load_cassette(path).recorded_at is not None
    assert yaml.safe_load(path.read_text())["compaction"]["recorded_at"] == "2026-01-02T00:00:00Z"


def test_the_upstream_prefix_and_query_and_json_value_matching(
    tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(upstream.origin, path, record_mode="once") as px:
        httpx.post(px.url + "/v1/x?b=2&a=1", content=b'{"k": [1, 2], "j": true}')
    assert upstream.requests[0][1] == "/v1/x?b=2&a=1"
    with CompactionProxy(upstream.origin, path) as px:
        # same JSON value, other key order and spacing; same query, other order; extra slash
        again = httpx.post(px.url + "//v1/x/?a=1&b=2", content=b'{"j":true,"k":[1,2]}')
    assert again.status_code == 200 and px.replayed == 1


def test_a_dialect_filters_its_credentials_and_matches_its_path_aliases(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    gateway_key = {"x-litellm-api-key": "gw-" + "k" * 30}
    with CompactionServer(dialect="litellm") as srv:
        origin = srv.url
        with CompactionProxy(origin, path, record_mode="once", dialect="litellm") as px:
            live = compact(px.url, **gateway_key)  # LiteLLM also serves /responses/compact
    assert live.status_code == 200 and px.failure() is None and px.validated == 1
    assert "k" * 30 not in path.read_text()
    data = load_cassette(path)
    assert data.dialect == "litellm"
    assert data.exchanges[0].request_headers["x-litellm-api-key"] == ["REDACTED"]
    with CompactionProxy(origin, path, dialect="litellm") as px:
        again = httpx.post(px.url + "/v1/responses/compact", json=BODY)
    assert again.json() == live.json() and px.replayed == 1


# -------------------------------------------------------------------------------------------------
# Validation, secrets, encodings


def test_violations_are_reported_and_not_written(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(upstream.base_url, path, record_mode="once") as px:
        good = compact(px.url)
        bad = compact(px.url, {"model": "gpt-5.4", "input": "x"}, **{"x-test-invalid": "1"})
    assert good.status_code == bad.status_code == 200  # answered as the upstream did
    assert "usage" not in bad.json()
    assert len(px.violations) == 1
    assert px.violations[0].startswith("exchange 1 (POST /v1/responses/compact) response")
    assert "missing required property 'usage'" in px.violations[0]
    failure = px.failure() or ""
    assert "does not conform to schema version" in failure
    assert "The exchange was not written to the cassette." in failure
    assert [r.index for r in px.session] == [0, None]
    assert len(load_cassette(path).exchanges) == 1
    assert "1 violation(s)" in px.summary_text()


def test_fail_on_violation_answers_with_the_status(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(upstream.base_url, path, record_mode="once", fail_on_violation=422) as px:
        bad = compact(px.url, **{"x-test-invalid": "1"})
        good = compact(px.url, {"model": "gpt-5.4", "input": "fine"})
    assert bad.status_code == 422 and bad.headers["x-compaction-proxy"] == "violation"
    details = bad.json()["compaction_proxy"]
    assert len(details["violations"]) == 1
    assert "missing required property 'usage'" in details["violations"][0]
    assert details["upstream_status"] == 200
    assert good.status_code == 200 and good.json()["object"] == "response.compaction"

    # A cassette written elsewhere that breaks the schema fails its replay the same way.
    broken = Exchange(
        "POST",
        upstream.base_url + "/responses/compact",
        {"content-type": ["application/json"]},
        json.dumps(BODY).encode(),
        200,
        "OK",
        {"content-type": ["application/json"]},
        json.dumps({"id": "resp_1", "object": "response.compaction"}).encode(),
    )
    save_cassette(path, CassetteData([broken], None))
    with CompactionProxy(upstream.base_url, path, fail_on_violation=409) as px:
        replayed = compact(px.url)
    assert replayed.status_code == 409
    assert "missing required property 'output'" in replayed.json()["error"]["message"]
    assert "(replayed)" in (px.failure() or "")


def test_secrets_are_filtered_or_refuse_the_exchange(tmp_path: Path, upstream: Upstream) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(
        upstream.base_url, path, record_mode="once", filter_headers=["x-team-token"]
    ) as px:
        compact(px.url, **{"x-team-token": "t" * 20, "api-key": "0123456789abcdef" * 2})
        leaky = compact(px.url, {"model": "gpt-5.4", "input": "y"}, **{"x-test-secret": "1"})
    assert leaky.status_code == 200 and leaky.json()["note"].startswith("sk-proj-")
    text = path.read_text()
    for secret in (KEY, "t" * 20, "0123456789abcdef" * 2, "org-secretorg", "__cf_bm", "sk-proj-"):
        assert secret not in text
    data = load_cassette(path)
    assert len(data.exchanges) == 1
    stored = data.exchanges[0]
    for name in ("authorization", "x-team-token", "api-key"):
        assert stored.request_headers[name] == ["REDACTED"]
    assert stored.response_headers["set-cookie"] == ["REDACTED"]
    failure = px.failure() or ""
    assert "looks like a secret" in failure and "response body /note" in failure
    assert "sk-proj-" not in failure


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_compressed_answers_pass_through_and_are_stored_decoded(
    tmp_path: Path, upstream: Upstream, encoding: str
) -> None:
    path = tmp_path / "c.yaml"
    with CompactionProxy(upstream.base_url, path, record_mode="once") as px:
        live = compact(px.url, **{"x-test-encoding": encoding})
    assert live.headers["content-encoding"] == encoding  # the client decoded it itself
    assert live.json()["object"] == "response.compaction"
    stored = load_cassette(path).exchanges[0]
    assert "content-encoding" not in stored.response_headers
    assert json.loads(stored.response_body) == live.json()
    with CompactionProxy(upstream.base_url, path) as px:
        assert compact(px.url, **{"x-test-encoding": encoding}).json() == live.json()


# -------------------------------------------------------------------------------------------------
# Streaming


class SlowEvents:
    """An upstream answering with server-sent events; it holds back the last one until told.

    Its route, ``/events``, is outside the schemas: the events are relayed and recorded as sent.
    """

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held_back = threading.Event()
        self.waited_out = False
        upstream = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if not self.path.endswith("/events"):
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for n in range(3):
                    self._chunk(f'event: delta\ndata: {{"n": {n}}}\n\n'.encode())
                upstream.held_back.set()
                if not upstream.release.wait(20):
                    upstream.waited_out = True
                self._chunk(b'event: done\ndata: {"n": 3}\n\n')
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        self.loopback = Loopback(Handler, poll_interval=0.05)
        self.url = self.loopback.origin + "/v1"

    def close(self) -> None:
        self.release.set()
        self.loopback.close()


@pytest.fixture
def slow_events() -> Iterator[SlowEvents]:
    upstream = SlowEvents()
    try:
        yield upstream
    finally:
        upstream.close()


def test_event_streams_pass_through_event_by_event(tmp_path: Path, slow_events: SlowEvents) -> None:
    path = tmp_path / "c.yaml"
    events: list[str] = []
    with CompactionProxy(slow_events.url, path, record_mode="once") as px:
        body = {"model": "gpt-5.4", "input": "hi", "stream": True}
        with httpx.stream("POST", px.url + "/events", json=body, timeout=30) as response:
            assert response.headers["content-type"] == "text/event-stream"
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(line)
                    # The last event is only sent once the client has seen the first.
                    slow_events.release.set()
    assert not slow_events.waited_out, "the first event reached the client only with the last"
    assert events == [f'data: {{"n": {n}}}' for n in range(4)]
    stored = load_cassette(path).exchanges[0]
    assert stored.response_body.decode().count("data:") == 4

    with CompactionProxy(slow_events.url, path) as px:
        replayed = httpx.post(px.url + "/events", json=body)
    assert replayed.headers["content-type"] == "text/event-stream"
    assert replayed.text == stored.response_body.decode()


# -------------------------------------------------------------------------------------------------
# TLS upstreams


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for a TLS upstream")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    files = ("-keyout", str(key), "-out", str(cert))
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    count = [0]

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            count[0] += 1
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.dumps(compaction_body(json.loads(raw), count[0])).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class TLSServer(ThreadingHTTPServer):
        def get_request(self) -> tuple[Any, Any]:
            sock, address = super().get_request()
            return context.wrap_socket(sock, server_side=True), address

    with Loopback(Handler, server_class=TLSServer, poll_interval=0.05) as server:
        yield f"https://127.0.0.1:{server.port}/v1", cert


def test_a_tls_upstream(tmp_path: Path, tls_upstream: tuple[str, Path]) -> None:
    url, cert = tls_upstream
    with CompactionProxy(url, tmp_path / "c.yaml", record_mode="once") as px:
        untrusted = compact(px.url)
    assert untrusted.status_code == 502
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.json()["error"]["message"]
    assert "could not be forwarded" in (px.failure() or "")
    with CompactionProxy(url, tmp_path / "c.yaml", record_mode="once", upstream_ca=cert) as px:
        live = compact(px.url)
    assert live.status_code == 200 and px.failure() is None
    assert load_cassette(tmp_path / "c.yaml").exchanges[0].uri == url + "/responses/compact"


# -------------------------------------------------------------------------------------------------
# Configuration errors


def test_bad_settings_fail_before_listening(tmp_path: Path) -> None:
    with pytest.raises(ProxyError, match="not an http:// or https:// URL"):
        CompactionProxy("ftp://example.com", tmp_path / "c")
    with pytest.raises(ProxyError, match="400 to 599"):
        CompactionProxy("http://127.0.0.1:9", tmp_path / "c", fail_on_violation=200)
    with pytest.raises(Exception, match="unknown record mode 'sometimes'"):
        CompactionProxy("http://127.0.0.1:9", tmp_path / "c", record_mode="sometimes")
    (tmp_path / "bad.yaml").write_text("interactions: [\n")
    with pytest.raises(Exception, match=r"bad\.yaml: not valid YAML"):
        CompactionProxy("http://127.0.0.1:9", tmp_path / "bad.yaml")


# -------------------------------------------------------------------------------------------------
# The command, stopped by a signal


COMMAND = (sys.executable, "-m", "pytest_compaction", "proxy")


def _start_command(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise AssertionError(f"no URL printed: {url!r} {process.communicate()}")
    return process, url


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_command_finishes_the_exchange_in_flight_and_writes_on_a_signal(
    tmp_path: Path, slow_events: SlowEvents, signum: int
) -> None:
    path = tmp_path / "c.yaml"
    summary = tmp_path / "summary.json"
    process, url = _start_command(
        "--upstream", slow_events.url, "--cassette", str(path), "--record", "once",
        "--summary-json", str(summary),
    )  # fmt: skip
    try:
        first = httpx.post(url + "/files", json=BODY, timeout=30)
        assert first.status_code == 404  # the event upstream has no such route; still recorded
        results: list[httpx.Response] = []
        client = threading.Thread(
            target=lambda: results.append(httpx.post(url + "/events", json=BODY, timeout=30))
        )
        client.start()
        assert slow_events.held_back.wait(20)
        os.kill(process.pid, signum)  # while the stream is still open
        assert process.stderr is not None
        for line in process.stderr:
            if "stopping: 1 exchange(s) in flight" in line:
                break
        slow_events.release.set()
        client.join(30)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert results and results[0].text.count("data:") == 4
    assert [e.path for e in load_cassette(path).exchanges] == ["/v1/files", "/v1/events"]
    assert "summary: 2 exchange(s) recorded" in stderr
    assert json.loads(summary.read_text())["recorded"] == 2


def test_the_command_logs_violations_and_answers_them_with_the_status(
    tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "c.yaml"
    process, url = _start_command(
        "--upstream", upstream.base_url, "--cassette", str(path), "--record", "new_episodes",
        "--fail-on-violation", "422", "--filter-header", "x-team-token",
    )  # fmt: skip
    try:
        bad = compact(url, **{"x-test-invalid": "1"})
        good = compact(url, {"model": "gpt-5.4", "input": "ok"}, **{"x-team-token": "t" * 24})
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert bad.status_code == 422 and good.status_code == 200
    assert "missing required property 'usage'" in stderr
    summary = stderr.rsplit("summary: ", 1)[1]
    assert summary.startswith("2 exchange(s) recorded, 0 replayed, 2 validated; 1 violation(s)")
    assert summary.rstrip().endswith("(1 exchange) written")
    assert "t" * 24 not in path.read_text()
    assert len(load_cassette(path).exchanges) == 1


def test_the_command_reports_bad_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["proxy", "--upstream", "nowhere", "--cassette", str(tmp_path / "c.yaml")])
    assert code == 2
    err = capsys.readouterr().err
    assert "upstream 'nowhere' is not an http:// or https:// URL" in err
    assert "Traceback" not in err


# -------------------------------------------------------------------------------------------------
# The fixture, and the plugin replaying what the proxy recorded

FIXTURE_TESTS = """
import json
import httpx
import pytest

BODY = {{"model": "gpt-5.4", "input": [{{"role": "user", "content": "hello"}}]}}


@pytest.mark.compaction_proxy(upstream="{upstream}")
def test_good(compaction_proxy, compaction_proxy_server):
    r = httpx.post(compaction_proxy + "/responses/compact", json=BODY,
                   headers={{"authorization": "Bearer {key}"}})
    assert r.json()["object"] == "response.compaction"


@pytest.mark.compaction_proxy(upstream="{upstream}")
def test_invalid(compaction_proxy):
    r = httpx.post(compaction_proxy + "/responses/compact", json=BODY,
                   headers={{"x-test-invalid": "1"}})
    assert r.status_code == 200


@pytest.mark.compaction
def test_combined(compaction_proxy):
    pass


@pytest.mark.compaction_proxy(upstream="http://127.0.0.1:9")
def test_miss(compaction_proxy):
    assert httpx.get(compaction_proxy + "/models").status_code == 404
"""

PLUGIN_REPLAY = """
import openai
import pytest


@pytest.mark.compaction("proxied")
def test_replay(compaction_cassette):
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="{key}", max_retries=0)
    out = client.responses.compact(model="gpt-5.4", input=[{{"role": "user", "content": "hello"}}])
    assert out.output[-1].type == "compaction"
    assert compaction_cassette.replayed == 1 and compaction_cassette.validated == 1
"""


def test_the_fixture_fails_tests_with_problems_and_its_cassettes_replay_in_the_plugin(
    pytester: pytest.Pytester, upstream: Upstream
) -> None:
    pytester.makepyfile(test_p=FIXTURE_TESTS.format(upstream=upstream.base_url, key=KEY))
    result = pytester.runpytest("--compaction-record=once", "-k", "not test_miss")
    result.assert_outcomes(passed=2, errors=2, deselected=1)
    out = result.stdout.str()
    assert "missing required property 'usage'" in out
    assert "The exchange was not written to the cassette." in out
    assert "compaction_proxy cannot be combined with the compaction marker" in out
    cassette = pytester.path / "cassettes" / "test_p" / "test_good.yaml"
    assert KEY not in cassette.read_text()
    assert yaml.safe_load(cassette.read_text())["compaction"]["dialect"] == "openai"

    # With the upstream gone, the cassette replays through the proxy, and through the pytest
    # plugin itself with the openai SDK; a request the proxy cannot answer fails its test.
    upstream.close()
    target = pytester.path / "cassettes" / "test_q" / "proxied.yaml"
    target.parent.mkdir(parents=True)
    shutil.copy(cassette, target)
    pytester.makepyfile(test_q=PLUGIN_REPLAY.format(key=KEY))
    result = pytester.runpytest("-k", "test_good or test_miss or test_replay")
    result.assert_outcomes(passed=3, errors=1, deselected=2)
    out = result.stdout.str()
    assert "test_miss.yaml does not exist; record it with pytest --compaction-record=once" in out
    assert "ERROR test_p.py::test_miss" in out


# -------------------------------------------------------------------------------------------------
# IPv6


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_the_server_and_the_proxy_listen_on_ipv6(tmp_path: Path) -> None:
    body = {"model": "gpt-5.4", "input": [{"role": "user", "content": "hi"}]}
    path = tmp_path / "c.yaml"
    with CompactionServer("::1", deterministic=True) as server:
        assert server.url.startswith("http://[::1]:")
        direct = httpx.post(server.base_url + "/responses/compact", json=body, timeout=10)
        assert direct.status_code == 200
        with CompactionProxy(server.base_url, path, record_mode="once", host="::1") as proxy:
            assert proxy.url.startswith("http://[::1]:")
            via = httpx.post(proxy.url + "/responses/compact", json=body, timeout=10)
    assert via.status_code == 200 and via.json()["output"][-1]["type"] == "compaction"
    assert (proxy.recorded, proxy.validated, proxy.violations) == (1, 1, [])
    (stored,) = load_cassette(path).exchanges
    assert stored.uri.startswith("http://[::1]:") and stored.uri.endswith("/v1/responses/compact")
