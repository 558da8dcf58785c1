"""``pytest-compaction serve`` as a real process: prints its URL, serves, exits 0 on a signal."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from pytest_compaction.cli import main

SERVE = [sys.executable, "-c", "from pytest_compaction.cli import main; raise SystemExit(main())"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_until_signalled(sig: signal.Signals) -> None:
    process = subprocess.Popen(
        [*SERVE, "serve", "--port", "0", "--deterministic", "--context-window", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with httpx.Client(base_url=base_url, timeout=5) as client:
            ok = client.post("/responses/compact", json={"model": "m", "input": "hi"})
            assert ok.status_code == 200, ok.text
            assert ok.json()["id"] == "resp_0001"  # --deterministic reached the server
            big = client.post("/responses/compact", json={"model": "m", "input": "x" * 1000})
            assert big.json()["error"]["code"] == "context_length_exceeded"
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_compaction import CompactionServer

    with CompactionServer() as taken:
        assert main(["serve", "--port", str(taken.port)]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


def test_serve_rejects_a_bad_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--fault", "teapot"]) == 2
    assert "unknown fault 'teapot'" in capsys.readouterr().err
