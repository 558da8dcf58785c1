"""The recording proxy under load: nothing a client saw answered is lost, and serving goes on.

- SIGKILL at random points while clients record in parallel (compact answers with a length and
  streamed answers in chunks): every exchange whose answer a client read to its end is in the
  cassette, and the cassette always loads. ``COMPACTION_RELIABILITY_SCALE=N`` runs N times as
  many trials (default 6).
- A write that takes long (a slow disk, played by holding the atomic write at a gate) does not
  stop replays from being answered; the recorded answer waits for its write.
- Keeping an exchange scans it and turns it into cassette text once, however large the
  cassette grows.
- A burst of 200 parallel clients is recorded whole, and SIGINT then stops the command promptly
  with every exchange written.
The proxy's command runs in a process of its own; the embedded server is the upstream.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_compaction import CompactionServer
from pytest_compaction._atomic import write_atomic as real_write_atomic
from pytest_compaction.cassette import _file
from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.proxy import _proxy
from pytest_compaction.proxy._proxy import CompactionProxy

SCALE = max(1, int(os.environ.get("COMPACTION_RELIABILITY_SCALE", "1")))
TRIALS = 6 * SCALE
SEED = int(os.environ.get("COMPACTION_RELIABILITY_SEED", "20261202"))
AUTH = {"authorization": "Bearer sk-load-" + "3" * 40}
COMMAND = [sys.executable, "-m", "pytest_compaction", "proxy"]


def tag_of(body: bytes | None) -> str:
    """The tag each test request carries in its text, read back from a stored request body."""
    text = (body or b"").decode("utf-8", "replace")
    start = text.find("tag-")
    return text[start : text.find(" ", start)] if start >= 0 else ""


def request(client: httpx.Client, base: str, tag: str, stream: bool) -> bool:
    """One exchange; True when its answer was read to its end and is the real one."""
    text = f"{tag} please remember this"
    if stream:
        body = {"model": "gpt-5.4", "input": text, "stream": True}
        with client.stream("POST", base + "/responses", json=body, headers=AUTH) as answer:
            data = b"".join(answer.iter_bytes())  # raises if the stream is cut short
            return answer.status_code == 200 and b"response.completed" in data
    body = {"model": "gpt-5.4", "input": [{"role": "user", "content": text}]}
    answer = client.post(base + "/responses/compact", json=body, headers=AUTH)
    return answer.status_code == 200 and answer.json().get("object") == "response.compaction"


def start_command(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise AssertionError(f"no URL printed: {url!r} {process.communicate()}")
    return process, url


def test_sigkill_loses_no_exchange_whose_answer_a_client_read_to_its_end(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    answered_total = lost_total = 0
    with CompactionServer() as server:
        for trial in range(TRIALS):
            cassette = tmp_path / f"trial{trial}.yaml"
            process, url = start_command(
                "--upstream", server.base_url, "--cassette", str(cassette),
                "--record", "new_episodes", "--quiet",
            )  # fmt: skip
            answered: list[str] = []
            stop = threading.Event()

            def client(
                worker: int,
                url: str = url,
                answered: list[str] = answered,
                stop: threading.Event = stop,
            ) -> None:
                with httpx.Client(timeout=30) as http:
                    for n in range(10_000):
                        if stop.is_set():
                            return
                        tag = f"tag-{worker}-{n}"
                        try:
                            if request(http, url, tag, stream=(worker + n) % 2 == 0):
                                answered.append(tag)
                        except httpx.HTTPError:
                            return  # the proxy is gone

            threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
            for thread in threads:
                thread.start()
            # The kill falls at a random point of the load, once the proxy is answering (its
            # first answer waits for the validators to be built).
            deadline = time.monotonic() + 30
            while not answered and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.3, 1.5))
            process.kill()
            process.wait(30)
            stop.set()
            for thread in threads:
                thread.join(30)
            assert answered, "no exchange was answered before the kill"
            stored = (
                {tag_of(ex.request_body) for ex in load_cassette(cassette).exchanges}
                if cassette.exists()
                else set()
            )
            lost = sorted(set(answered) - stored)
            answered_total += len(answered)
            lost_total += len(lost)
            assert not lost, f"trial {trial}: {len(lost)} of {len(answered)} answered not in file"
    print(f"\nproxy SIGKILL: {TRIALS} trials, {answered_total} answered, {lost_total} lost")


def gated_writes(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Cassette writes wait at a gate (a slow disk); returns (a write is waiting, open the gate)."""
    waiting, gate = threading.Event(), threading.Event()

    def write_atomic(path: Any, data: Any) -> None:
        waiting.set()
        assert gate.wait(30), "the gate was never opened"
        real_write_atomic(path, data)

    monkeypatch.setattr(_file._atomic, "write_atomic", write_atomic)
    return waiting, gate


def test_replays_are_answered_while_a_write_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = tmp_path / "c.yaml"
    with CompactionServer() as server:
        with CompactionProxy(server.base_url, cassette, record_mode="once") as proxy:
            assert request(httpx.Client(), proxy.url, "tag-old", stream=False)
        waiting, gate = gated_writes(monkeypatch)
        results: list[bool] = []
        with CompactionProxy(server.base_url, cassette, record_mode="new_episodes") as proxy:
            recording = threading.Thread(
                target=lambda: results.append(
                    request(httpx.Client(timeout=30), proxy.url, "tag-new", stream=False)
                )
            )
            recording.start()
            assert waiting.wait(10)  # the new exchange is being written, the write held
            with httpx.Client(timeout=5) as client:
                assert request(client, proxy.url, "tag-old", stream=False)  # replayed
            assert recording.is_alive() and not results  # its answer waits for its write
            gate.set()
            recording.join(30)
    assert results == [True]
    tags = [tag_of(ex.request_body) for ex in load_cassette(cassette).exchanges]
    assert tags == ["tag-old", "tag-new"]


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    calls: list[int] = []
    real: Callable[..., Any] = getattr(_proxy, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_proxy, name, spy)
    return calls


def test_keeping_an_exchange_scans_it_and_dumps_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = tmp_path / "c.yaml"
    scans = counting(monkeypatch, "scan_exchange")
    dumps = counting(monkeypatch, "interaction_text")
    with CompactionServer() as server:
        with (
            CompactionProxy(server.base_url, cassette, record_mode="new_episodes") as proxy,
            httpx.Client() as client,
        ):
            for n in range(40):
                assert request(client, proxy.url, f"tag-{n}", stream=n % 4 == 0)
        assert (len(scans), len(dumps)) == (40, 40)
        # A loaded cassette's exchanges are scanned and dumped once, at the first write.
        with (
            CompactionProxy(server.base_url, cassette, record_mode="new_episodes") as proxy,
            httpx.Client() as client,
        ):
            for n in range(40, 50):
                assert request(client, proxy.url, f"tag-{n}", stream=False)
    assert (len(scans), len(dumps)) == (50, 90)
    assert len(load_cassette(cassette).exchanges) == 50


def test_a_burst_of_200_clients_is_recorded_whole_and_sigint_stops_promptly(
    tmp_path: Path,
) -> None:
    cassette = tmp_path / "c.yaml"
    with CompactionServer() as server:
        process, url = start_command(
            "--upstream", server.base_url, "--cassette", str(cassette), "--record", "once",
        )  # fmt: skip
        try:
            results: list[bool] = []
            barrier = threading.Barrier(200)

            def client(n: int) -> None:
                with httpx.Client(timeout=60) as http:
                    barrier.wait()
                    results.append(request(http, url, f"tag-{n}", stream=n % 5 == 0))

            threads = [threading.Thread(target=client, args=(n,)) for n in range(200)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
            stopped = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
    assert results.count(True) == 200, f"{results.count(True)} of 200 answered"
    assert process.returncode == 0, stderr
    assert stopped < 30, f"SIGINT took {stopped:.1f} s"
    print(f"\nproxy SIGINT after 200 parallel exchanges: stopped in {stopped:.2f} s")
    tags = {tag_of(ex.request_body) for ex in load_cassette(cassette).exchanges}
    assert tags == {f"tag-{n}" for n in range(200)}
    assert "summary: 200 exchange(s) recorded" in stderr


def test_stop_is_bounded_while_an_upstream_never_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    cassette = tmp_path / "silent.yaml"
    with (
        CompactionServer() as server,
        CompactionProxy(server.base_url, cassette, record_mode="once") as proxy,
    ):
        assert request(httpx.Client(), proxy.url, "tag-kept", stream=False)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    upstream = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
    proxy = CompactionProxy(upstream, cassette, record_mode="new_episodes", drain_timeout=1.0)
    proxy.start()
    outcome: list[BaseException | bool] = []

    def hung_client() -> None:
        try:
            outcome.append(request(httpx.Client(timeout=30), proxy.url, "tag-hung", stream=False))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    client = threading.Thread(target=hung_client)
    client.start()
    deadline = time.monotonic() + 10
    while not accepted and time.monotonic() < deadline:  # the exchange is in flight upstream
        time.sleep(0.01)
    assert accepted, "the proxy never reached the upstream"
    started = time.monotonic()
    try:
        with caplog.at_level("WARNING", logger="pytest_compaction"):
            proxy.stop()
        stopped = time.monotonic() - started
    finally:
        silent.close()
        for sock in accepted:
            sock.close()
    client.join(30)
    print(f"\nproxy stop with an exchange hung upstream, 1 s drain: {stopped:.2f} s")
    assert stopped < 8, f"stop took {stopped:.1f} s with a 1 s drain"
    assert "exchanges still in flight after 1 s were cut off" in caplog.text
    assert outcome and outcome[0] is not True  # the cut-off client saw no answer
    tags = [tag_of(ex.request_body) for ex in load_cassette(cassette).exchanges]
    assert tags == ["tag-kept"]  # what was recorded before stays, the cut-off one is not added
