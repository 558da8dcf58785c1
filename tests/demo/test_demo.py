"""``pytest-compaction demo`` as a user runs it: a real process, real cassettes on disk."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from pytest_compaction.cassette._file import load_cassette
from pytest_compaction.cassette._redact import check_no_secrets
from pytest_compaction.cli import main
from pytest_compaction.demo._demo import DEMO_KEY, RECORDED_ORIGIN
from pytest_compaction.replay._netguard import block_network
from pytest_compaction.replay._recorder import use_cassette
from pytest_compaction.schema._validate import validate, validate_request, validate_response
from pytest_compaction.schema._versions import newest_version
from pytest_compaction.server import CompactionServer

EXCHANGES = {
    "plain": 1,
    "instructions": 1,
    "chain": 3,
    "azure": 1,
    "error-429": 1,
    "server-side": 5,
}
STREAMED = {"server-side"}  # POST /responses with stream: true
_SCRIPT = Path(sys.executable).with_name("pytest-compaction")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pytest_compaction"]
# A table row: name, recorded, replayed, validated, violations, drift, verdict, cassette.
ROW = re.compile(r"^  (\S+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(same objects|\S+) +(\S+)$")


def demo(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "demo", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def rows(stdout: str) -> dict[str, tuple[str, ...]]:
    found = {}
    for line in stdout.splitlines():
        match = ROW.match(line)
        if match and match.group(1) != "scenario":
            found[match.group(1)] = match.groups()[1:]
    return found


def interactions(path: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["version"] == 1
    assert doc["compaction"]["schema_version"] == newest_version()
    items: list[dict[str, Any]] = doc["interactions"]
    return items


def body(part: dict[str, Any]) -> Any:
    raw = part["body"]["string"] if "status" in part else part["body"]
    return json.loads(raw)


def test_demo_records_replays_offline_and_repeats_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cassettes"
    first = demo("--out", str(out))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    lines = first.stdout.splitlines()
    assert lines[-1] == (
        "OK: 6 scenarios, 12 exchanges recorded, 12 replayed offline, 24 checks against the "
        "schema (each exchange at record and at replay), 0 violations; cassettes in "
        f"{out.resolve()}"
    )
    assert "replay with the server stopped and sockets blocked: 0 connection attempts" in (
        first.stdout
    )
    assert "secrets   0 found on disk" in first.stdout
    assert f"schemas   {newest_version()} (recorded in each cassette)" in first.stdout
    table = rows(first.stdout)
    assert set(table) == set(EXCHANGES)
    for name, count in EXCHANGES.items():
        n = str(count)
        assert table[name] == (
            n,
            n,
            str(2 * count),
            "0",
            "0",
            "same objects",
            str(out / f"{name}.yaml"),
        )

    # Exactly the six cassettes and the .gitignore, nothing left over from staging.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".gitignore", *(f"{n}.yaml" for n in EXCHANGES)]
    )
    cassettes = {name: interactions(out / f"{name}.yaml") for name in EXCHANGES}
    assert {name: len(items) for name, items in cassettes.items()} == EXCHANGES

    for name, items in cassettes.items():
        text = (out / f"{name}.yaml").read_text(encoding="utf-8")
        assert DEMO_KEY not in text
        check_no_secrets(name, load_cassette(out / f"{name}.yaml").exchanges)
        for item in items:
            request, response = item["request"], item["response"]
            assert request["uri"].startswith(RECORDED_ORIGIN + "/")
            assert request["headers"]["authorization"] == ["REDACTED"]
            if name in STREAMED:
                assert validate("responses.request", body(request)).valid
                assert response["headers"]["content-type"] == ["text/event-stream; charset=utf-8"]
                assert all(validate("responses.event", e["data"]).valid for e in response["events"])
                continue
            assert validate_request(body(request)).valid
            status = response["status"]["code"]
            assert validate_response(body(response), status=status).valid

    plain = cassettes["plain"][0]
    assert plain["request"]["uri"] == RECORDED_ORIGIN + "/v1/responses/compact"
    assert body(plain["response"])["output"][-1]["type"] == "compaction"
    assert "instructions" in body(cassettes["instructions"][0]["request"])

    chain = cassettes["chain"]
    first_id = body(chain[0]["response"])["id"]
    assert body(chain[1]["request"])["previous_response_id"] == first_id
    compaction_item = body(chain[1]["response"])["output"][-1]
    assert body(chain[2]["request"])["input"][0] == compaction_item

    azure = cassettes["azure"][0]
    assert azure["request"]["uri"] == RECORDED_ORIGIN + "/openai/v1/responses/compact"
    assert azure["request"]["headers"]["api-key"] == ["REDACTED"]

    # Server-side compaction: the fourth turn compacts inside its stream; the fifth sends the
    # compaction item (as response.completed gave it) and one question, nothing before it.
    turns = cassettes["server-side"]
    assert all(t["request"]["uri"] == RECORDED_ORIGIN + "/v1/responses" for t in turns)
    finals = [t["response"]["events"][-1]["data"]["response"] for t in turns]
    assert [[i["type"] for i in f["output"]] for f in finals] == [["message"]] * 3 + [
        ["message", "compaction"],
        ["message"],
    ]
    fifth = body(turns[4]["request"])["input"]
    assert [i.get("type", i.get("role")) for i in fifth] == ["compaction", "user"]
    assert fifth[0] == finals[3]["output"][1]

    error = cassettes["error-429"][0]
    assert error["response"]["status"]["code"] == 429
    assert error["response"]["headers"]["retry-after"] == ["0"]
    assert body(error["response"])["error"]["code"] == "rate_limit_exceeded"

    # The cassettes serve a user's own replay too, wherever the client points.
    with use_cassette(out / "plain.yaml") as rec:
        client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x", max_retries=0)
        replayed = client.responses.compact(**body(plain["request"]))
    assert replayed.id == body(plain["response"])["id"]
    assert (rec.replayed, rec.violations) == (1, [])

    # Re-running over the folder re-records it, a damaged leftover included, to the same bytes
    # (in this process this time: the command's code path is the same, minus the start-up).
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "plain.yaml").write_text("interactions: [", encoding="utf-8")
    assert main(["demo", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == lines[-1]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_demo_fails_clearly_when_a_cassette_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    (out / "chain.yaml").mkdir(parents=True)
    assert main(["demo", "--out", str(out)]) == 1
    stdout = capsys.readouterr().out
    assert f"chain: problem: record: {out / 'chain.yaml'} was not written: Is a directory" in (
        stdout
    )
    last = stdout.splitlines()[-1]
    assert last.startswith(
        "FAILED: 6 scenarios, 12 exchanges recorded, 9 replayed offline, 21 checks against the "
        "schema"
    )
    assert "(failed: chain)" in last
    # The other scenarios still recorded and replayed.
    table = rows(stdout)
    assert table["plain"][:6] == ("1", "1", "2", "0", "0", "same objects")
    assert table["chain"][:6] == ("3", "0", "3", "0", "0", "-")
    assert (out / "plain.yaml").is_file() and (out / "chain.yaml").is_dir()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".gitignore", *(f"{n}.yaml" for n in EXCHANGES)]
    )


def test_out_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me", encoding="utf-8")
    run = demo("--out", str(target))
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.strip() == (
        f"pytest-compaction demo: --out {target}: exists and is not a directory"
    )
    assert target.read_text(encoding="utf-8") == "keep me"

    below = target / "sub"
    run = demo("--out", str(below))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith(f"pytest-compaction demo: --out {below}: cannot write cassettes")


def test_missing_openai_is_reported_with_the_fix(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['openai'] = None\n"  # makes `import openai` fail
        "from pytest_compaction.cli import main\n"
        f"raise SystemExit(main(['demo', '--out', {str(tmp_path / 'out')!r}]))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "openai SDK, which is not installed" in run.stderr
    assert "pip install 'pytest-compaction[demo]'" in run.stderr
    assert not (tmp_path / "out").exists()


def test_the_network_guard_refuses_and_counts_connections() -> None:
    with CompactionServer() as server:
        with (
            block_network(reason="the demo replays offline") as refused,
            pytest.raises(OSError, match="the demo replays offline"),
        ):
            socket.create_connection((server.host, server.port), timeout=5)
        assert len(refused) == 1 and str(server.port) in refused[0]
        socket.create_connection((server.host, server.port), timeout=5).close()
