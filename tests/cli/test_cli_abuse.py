"""Input nobody should send: a clear error, never a hang or a traceback.

Commands given what they cannot use exit 2 with a usage error; each runs in a process of its
own with a timeout, so a hang fails the test. The embedded server answers what the API
refuses with a 400, not a 500.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "pytest_compaction"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["serve"], ["proxy", "--upstream", "http://127.0.0.1:9"]])
@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error(command: list[str], port: str) -> None:
    done = run(*command, "--port", port)
    assert done.returncode == 2
    assert "argument --port: " in done.stderr and "is not a port number" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("this platform has no named pipes")
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def test_a_named_pipe_is_refused_not_read(fifo: Path, tmp_path: Path) -> None:
    cases = {
        ("validate", "--kind", "request", str(fifo)): f"{fifo}: not a regular file",
        ("schemas", "derive", "--spec", str(fifo), "--out", str(tmp_path / "o")): (
            f"cannot read spec {fifo}: not a regular file"
        ),
        ("check", str(fifo)): f"{fifo}: not a regular file or a folder",
    }
    for args, message in cases.items():
        done = run(*args)  # a read would block until the timeout
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


# -- the embedded server, given bodies the API refuses ---------------------------------------------
def raw_exchange(origin: str, request: bytes) -> bytes:
    import socket

    host, port = origin.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def test_the_server_answers_400_to_a_body_nested_past_any_parser(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import httpx

    from pytest_compaction import CompactionServer

    deep = b'{"model": "m", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with CompactionServer() as server:
        for path in ("/responses/compact", "/responses"):
            answer = httpx.post(
                server.base_url + path, content=deep, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: -1\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n",
    ],
    ids=["negative content-length", "negative chunk size"],
)
def test_the_server_answers_400_to_a_negative_length(head: bytes) -> None:
    from pytest_compaction import CompactionServer

    with CompactionServer() as server:
        request = b"POST /v1/responses/compact HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head
        answer = raw_exchange(server.base_url, request)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: -1\r\n\r\n",
        b"Content-Length: +5\r\n\r\nhello",
        b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    ],
    ids=["negative content-length", "signed content-length", "negative chunk", "0x chunk"],
)
def test_the_proxy_answers_400_to_a_length_that_is_not_one(tmp_path: Path, head: bytes) -> None:
    from pytest_compaction import CompactionServer
    from pytest_compaction.proxy._proxy import CompactionProxy

    cassette = tmp_path / "c.yaml"
    with (
        CompactionServer() as server,
        CompactionProxy(server.base_url, cassette, record_mode="all") as proxy,
    ):
        request = b"POST /responses/compact HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head
        answer = raw_exchange(proxy.url, request)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert not cassette.exists()  # nothing was forwarded, so nothing recorded


def test_a_ca_file_that_cannot_be_used_stops_the_proxy_before_it_starts(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    done = run(
        "proxy", "--upstream", "https://127.0.0.1:9", "--upstream-ca", str(missing),
        "--cassette", str(tmp_path / "c.yaml"),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"upstream CA file {missing} cannot be used: [Errno 2]" in done.stderr
    assert "listening" not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_a_fault_longer_than_an_hour_is_refused_at_once() -> None:
    done = run("serve", "--fault", "slow:1e308")
    assert done.returncode == 2
    assert "invalid fault: slow needs a number of seconds (0 to 3600)" in done.stderr


def test_a_cassette_over_the_load_limit_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from conftest import Upstream

    from pytest_compaction import ReplayError
    from pytest_compaction.replay._recorder import use_cassette

    monkeypatch.setenv("PYTEST_COMPACTION_MAX_CASSETTE_MB", "1")
    path = tmp_path / "big.yaml"
    upstream = Upstream()
    try:
        body = {"model": "gpt-5", "input": [{"role": "user", "content": "x" * 1_500_000}]}
        with pytest.raises(ReplayError) as caught, use_cassette(path, record_mode="once"):
            httpx.post(f"{upstream.base_url}/responses/compact", json=body, timeout=30)
    finally:
        upstream.close()
    assert f"cassette {path} would be 3 MB, over the 1 MB limit its loader accepts" in str(
        caught.value
    )
    assert not path.exists()


def reset_mid_body(origin: str) -> None:
    """Open a connection, send half a request, and reset it (RST, not FIN)."""
    import socket
    import struct

    host, port = origin.split("//")[1].split("/")[0].split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(
        b"POST /v1/responses/compact HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Length: 100000\r\n\r\n{"model"'
    )
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def test_a_client_resetting_its_connection_prints_no_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import socket
    import time

    import httpx

    from pytest_compaction import CompactionProxy, CompactionServer

    with (
        CompactionServer() as server,
        CompactionProxy(server.base_url, tmp_path / "c.yaml", record_mode="once") as proxy,
    ):
        for origin in (server.base_url, proxy.url):
            for _ in range(3):
                reset_mid_body(origin)
        time.sleep(0.5)  # the handler threads meet the reset
        # both still answer
        body = {"model": "gpt-5", "input": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{proxy.url}/responses/compact", json=body).status_code == 200
        listeners = [server._httpd, proxy._httpd]  # type: ignore[attr-defined]
        assert all(s.request_queue_size == socket.SOMAXCONN for s in listeners)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err, err


def test_output_piped_to_a_reader_that_stops_early_ends_quietly() -> None:
    # ``... | head -1`` on 200 KB of JSON, more than a pipe holds: the reader closes early
    command = [*CLI, "schemas", "diff", "2026-04-13", "2026-11-19", "--format", "json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert first == b"{\n"
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141


# -- bodies nested deeper than any parser --------------------------------------------------------
DEEP = b'{"model": "m", "input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_recording_a_body_nested_past_the_parser_is_a_violation_not_a_crash(
    tmp_path: Path,
) -> None:
    import httpx

    from pytest_compaction import CompactionServer
    from pytest_compaction.replay._recorder import use_cassette

    path = tmp_path / "deep.yaml"
    with CompactionServer() as server:
        with use_cassette(path, record_mode="once", raise_on_exit=False) as rec:
            answer = httpx.post(
                server.base_url + "/responses/compact",
                content=DEEP,
                headers={"content-type": "application/json"},
            )
        assert answer.status_code == 400
    assert rec.violations == ["exchange 0 request /: body nests deeper than the JSON parser allows"]
    assert not path.exists()  # a violating exchange is not written


def test_scan_import_and_check_read_a_deep_cassette_without_a_traceback(tmp_path: Path) -> None:
    from pytest_compaction.cassette._exchange import CassetteData, Exchange
    from pytest_compaction.cassette._file import save_cassette

    key = "sk-proj-" + "A1b2C3d4" * 6
    headers = {"content-type": ["application/json"]}
    with_key = DEEP[:-1] + f', "note": "{key}"}}'.encode()
    exchange = Exchange(
        method="POST",
        uri="http://127.0.0.1:9/v1/responses/compact",
        request_headers=headers,
        request_body=DEEP,
        response_headers=headers,
        response_body=with_key,
    )
    path = tmp_path / "deep.yaml"
    save_cassette(path, CassetteData([exchange], schema_version=None))
    scan = run("scan", str(path))
    assert scan.returncode == 1 and "1 finding(s)" in scan.stdout, scan.stdout + scan.stderr
    imported = run("import", str(path), "-o", str(tmp_path / "out"))
    assert "1 refused" in imported.stdout, imported.stdout + imported.stderr
    check = run("check", str(path))
    assert check.returncode == 1
    assert "request: body nests deeper than the JSON parser allows" in check.stdout
    for done in (scan, imported, check):
        assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
