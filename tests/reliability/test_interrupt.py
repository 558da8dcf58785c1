"""A recording process killed with SIGKILL at random points never leaves a broken cassette.

A child process re-records three cassettes in turn, each growing by one exchange per pass
(``record_mode="new_episodes"``, a real HTTP request to a loopback server, then the whole
cassette is written again). Each trial kills it with SIGKILL after a random delay. Afterwards
every cassette must load and be exactly the last version the child reported as written, or the
complete next one; the hidden temp file a killed write leaves must never look like a cassette and
must be gone after the next write.

Children are forked from one prepared process, so a trial costs milliseconds, not an interpreter
start. ``COMPACTION_RELIABILITY_SCALE=N`` runs N times as many trials (default 50).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.loopback import Loopback, QuietHandler

from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.replay._recorder import use_cassette

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SCALE = max(1, int(os.environ.get("COMPACTION_RELIABILITY_SCALE", "1")))
TRIALS = 50 * SCALE
NAMES = ("a.yaml", "b.yaml", "c.yaml")
MAX_EXCHANGES = 24  # then the cassette is recorded again from scratch

# The prepared process: imports everything once, then forks one recording child per trial.
ZYGOTE = r"""
import json, os, sys
import httpx
from pathlib import Path
from pytest_compaction.replay._recorder import use_cassette

folder, origin, log_path = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
max_exchanges, names = int(sys.argv[4]), json.loads(sys.argv[5])
PAD = "x" * 8_000
client = httpx.Client()  # built here: loading the CA bundle takes longer than a trial


def record_forever(start):
    log = open(log_path, "a", buffering=1)
    i = start
    while True:
        name = names[i % len(names)]
        i += 1
        path = folder / name
        with use_cassette(path, record_mode="new_episodes") as rec:
            n = len(rec.exchanges)
            mode_all = n >= max_exchanges
        if mode_all:  # start over: a full re-record with a single exchange
            with use_cassette(path, record_mode="all") as rec:
                log.write(f"saving {name} 1\n")
                client.post(origin + "/v1/echo", json={"seq": 0, "pad": PAD})
            log.write(f"saved {name} 1\n")
            continue
        with use_cassette(path, record_mode="new_episodes") as rec:
            client.post(origin + "/v1/echo", json={"seq": n, "pad": PAD})
            log.write(f"saving {name} {n + 1}\n")
        log.write(f"saved {name} {n + 1}\n")


print("ready", flush=True)
for line in sys.stdin:
    start = int(line)
    pid = os.fork()
    if pid == 0:
        try:
            record_forever(start)
        finally:
            os._exit(3)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(status, flush=True)
"""


class Echo:
    def __init__(self) -> None:
        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                seq = json.loads(body)["seq"]
                out = json.dumps({"object": "echo", "seq": seq}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a killed child resets its connection: expected here

        self.loopback = Loopback(Handler, server_class=Server, poll_interval=0.05)
        self.origin = self.loopback.origin

    def close(self) -> None:
        self.loopback.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    try:
        yield server
    finally:
        server.close()


def _last_saved(log: Path) -> tuple[dict[str, int], str | None]:
    """The last version of each cassette the child reported written, and its last line."""
    saved: dict[str, int] = {}
    last = None
    for line in log.read_text().splitlines():
        last = line
        word, name, count = line.split()
        if word == "saved":
            saved[name] = int(count)
    return saved, last


def _wait_for_growth(log: Path, word: str) -> None:
    """Until a new line starting with ``word`` is appended to the log (or 2 s pass)."""
    size = log.stat().st_size
    for _ in range(2000):
        with log.open("rb") as handle:
            handle.seek(size)
            if any(line.startswith(word.encode()) for line in handle.read().splitlines()):
                return
        time.sleep(0.001)


def _check_cassette(path: Path, before: int | None) -> int:
    """Loads, holds exchanges 0..k-1 in order, and k is the previous version or the next."""
    exchanges = load_cassette(path).exchanges
    seqs = [json.loads(ex.request_body or b"{}")["seq"] for ex in exchanges]
    answers = [json.loads(ex.response_body)["seq"] for ex in exchanges]
    k = len(exchanges)
    assert seqs == list(range(k)) == answers, path.name
    allowed = {before} if before is not None else set()
    allowed.add(1 if before is None or before >= MAX_EXCHANGES else before + 1)
    assert k in allowed, (path.name, k, before)
    return k


def test_sigkill_while_recording_leaves_each_cassette_old_or_new(
    tmp_path: Path, echo: Echo
) -> None:
    folder = tmp_path / "cassettes"
    folder.mkdir()
    log = tmp_path / "progress.log"
    log.touch()
    script = tmp_path / "zygote.py"
    script.write_text(ZYGOTE)
    zygote = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(folder),
            echo.origin,
            str(log),
            str(MAX_EXCHANGES),
            json.dumps(NAMES),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    rng = random.Random(int(os.environ.get("COMPACTION_RELIABILITY_SEED", "8")))
    mid_save = 0
    temps_seen: set[str] = set()
    observed: dict[str, int] = {}  # each cassette's count at the last check
    logged: dict[str, int | None] = {}  # the log's count for it at that check
    try:
        assert zygote.stdout.readline().strip() == "ready"
        for trial in range(TRIALS):
            zygote.stdin.write(f"{rng.randrange(3)}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            if trial % 2:
                # Anywhere in the loop: a few passes, each a load, a request and a save.
                time.sleep(rng.uniform(0.0, 0.1))
            else:
                # Shortly after the child starts saving a cassette: a random point of the save.
                _wait_for_growth(log, "saving")
                time.sleep(rng.uniform(0.0, 0.03))
            os.kill(pid, signal.SIGKILL)
            status = int(zygote.stdout.readline())
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, trial

            saved, last = _last_saved(log)
            if last is not None and last.startswith("saving"):
                mid_save += 1
            for name in NAMES:
                path = folder / name
                if path.exists():
                    # A child killed between a save and its log line leaves the file one ahead
                    # of the log: what the last check saw counts, unless the log moved on since.
                    before = saved.get(name)
                    if name in observed and before == logged.get(name):
                        before = observed[name]
                    observed[name] = _check_cassette(path, before)
                    logged[name] = saved.get(name)
            entries = sorted(os.listdir(folder))
            temps = [e for e in entries if e.endswith(".tmp")]
            temps_seen.update(temps)
            assert all(e.startswith(".") for e in temps), entries
            assert {e for e in entries if not e.endswith(".tmp")} <= set(NAMES), entries
            # A killed write leaves at most one temp file per cassette: the next write to the
            # cassette removes it.
            for name in NAMES:
                assert sum(e.startswith(f".{name}.") for e in temps) <= 1, entries
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)

    # The next recording run of each cassette clears what the killed writers left.
    for name in NAMES:
        path = folder / name
        with use_cassette(path, record_mode="new_episodes") as rec:
            n = len(rec.exchanges)
            httpx.post(echo.origin + "/v1/echo", json={"seq": n, "pad": ""})
        assert len(load_cassette(path).exchanges) == n + 1
    assert sorted(os.listdir(folder)) == sorted(NAMES)
    print(
        f"\ninterruption: {TRIALS} SIGKILL trials; {mid_save} landed while a cassette was being "
        f"saved, {len(temps_seen)} inside the file write itself (a temp file left behind); every "
        "cassette loaded as the previous or the new version"
    )
    assert mid_save > 0  # the kills did land inside saves
