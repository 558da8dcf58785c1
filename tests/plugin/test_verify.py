"""``--compaction-verify``: replay as usual, and send each replayed exchange to the live service.

pytest runs in a subprocess (pytest-recording installed beside the plugin). The cassettes are
recorded against one embedded server; the "live service" of a verify run is another embedded
server on 127.0.0.1 that the test module's base URL points at: an identical one (no drift),
a gateway that adds fields to every answer (drift, verdicts unchanged), and one whose answers
are not JSON (a verdict change). The client's key reaches the live server and nothing else.
"""

from __future__ import annotations

import pytest

from pytest_compaction.server import CompactionServer

pytest.importorskip("pytest_recording", reason="pytest-recording is a dev dependency")

KEY = "sk-test-" + "v3" * 20

TESTS = """
import os

import openai
import pytest

MODEL = "openai/gpt-5.4"  # the gateway's provider/model form; the other servers take it too


def client():
    return openai.OpenAI(base_url=os.environ["LIVE_BASE"], max_retries=0)


@pytest.mark.compaction
def test_compact():
    out = client().responses.compact(model=MODEL, input="hello")
    assert out.output[-1].type == "compaction"


@pytest.mark.compaction
def test_chain(compaction_cassette):
    first = client().responses.create(model=MODEL, input="hello", store=True)
    again = client().responses.create(model=MODEL, input="again", previous_response_id=first.id)
    # The test gets the recorded answers, whatever the live service says.
    assert [e.response_body for e in compaction_cassette.exchanges][1].decode().count(again.id)


@pytest.mark.compaction
def test_stream():
    events = client().responses.create(model=MODEL, input="stream", stream=True)
    assert [e.type for e in events][-1] == "response.completed"
"""


def _base(server: CompactionServer) -> str:
    return f"http://127.0.0.1:{server.port}/v1"


def _summary(out: str) -> str:
    """The terminal summary's verify section (its heading is a line of dashes around it)."""
    heading = " compaction verify ---"
    return out.split(heading)[1] if heading in out else ""


def test_verify_reports_no_drift_drift_and_verdict_changes_and_is_never_implicit(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_api=TESTS)
    pytester._monkeypatch.setenv("OPENAI_API_KEY", KEY)
    folder = pytester.path / "cassettes" / "test_api"
    with CompactionServer() as recorded:
        pytester._monkeypatch.setenv("LIVE_BASE", _base(recorded))
        pytester.runpytest_subprocess("--compaction-record=once").assert_outcomes(passed=3)
    cassettes = {p.name: p.read_bytes() for p in folder.iterdir()}

    with CompactionServer() as same:
        pytester._monkeypatch.setenv("LIVE_BASE", _base(same))
        # Without the flag, replay never reaches the live service.
        pytester.runpytest_subprocess().assert_outcomes(passed=3)
        assert same.requests == []
        result = pytester.runpytest_subprocess("--compaction-verify")
        result.assert_outcomes(passed=3)
        out = result.stdout.str()
        # Each replayed exchange went live once, with the client's own key; turn 2 of the chain
        # names the live turn 1, not the recorded one.
        sent = same.requests
        assert sorted(r.path for r in sent) == [*["/v1/responses"] * 3, "/v1/responses/compact"]
        keys = {v for r in sent for k, v in r.headers.items() if k.lower() == "authorization"}
        assert keys == {f"Bearer {KEY}"}
        assert all(r.status == 200 for r in sent), [(r.path, r.status) for r in sent]
        chained = [r.json() for r in sent if "previous_response_id" in r.json()]
        assert len(chained) == 1
        # (a fresh server answers 200 only to a previous_response_id it issued itself)
        assert chained[0]["previous_response_id"] not in (folder / "test_chain.yaml").read_text()
        assert (
            "4 exchange(s) of 3 test(s) sent to the live service: 0 failure(s) (verdict changes, "
            "calls without an answer), 0 with contract drift, 0 skipped"
        ) in _summary(out)
    assert KEY not in out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == cassettes  # nothing written

    # A gateway that adds fields: drift per test, exchange and field; the tests pass. Under
    # xdist the controller's summary holds both workers' findings.
    with CompactionServer(dialect="bifrost") as gateway:
        pytester._monkeypatch.setenv("LIVE_BASE", _base(gateway))
        result = pytester.runpytest_subprocess("--compaction-verify", "-n", "2")
        result.assert_outcomes(passed=3)
        summary = _summary(result.stdout.str())
        assert "4 exchange(s) of 3 test(s) sent to the live service: 0 failure(s)" in summary
        assert "4 with contract drift, 0 skipped" in summary
        assert "test_api.py::test_compact:\n  drift: exchange 0 (POST /v1/responses/compact): " in (
            summary
        )
        assert "response usage.cost: added (object with 7 fields)" in summary
        assert "  drift: exchange 1 (POST /v1/responses): " in summary
        assert KEY not in result.stdout.str()

    # Answers that are not JSON: the recorded valid answer is invalid live, the tests fail; the
    # chain's second turn cannot name a live first turn and is skipped, saying why.
    with CompactionServer(fault="malformed-json") as broken:
        pytester._monkeypatch.setenv("LIVE_BASE", _base(broken))
        result = pytester.runpytest_subprocess("--compaction-verify")
        result.assert_outcomes(failed=2, passed=1)  # the fault leaves event streams alone
        out = result.stdout.str()
        assert (
            f"compaction verify: exchange 0 (POST /v1/responses/compact) of cassette "
            f"{folder / 'test_compact.yaml'} is now failing live: the recorded answer is valid"
        ) in out
        summary = _summary(out)
        assert "3 exchange(s) of 3 test(s) sent to the live service: 2 failure(s)" in summary
        assert (
            "  skipped: exchange 1 (POST /v1/responses): not sent live: previous_response_id "
        ) in summary
        assert "names a response the live service did not issue in this run" in summary
        assert len(broken.requests) == 3
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == cassettes


def test_verify_under_block_network_reaches_only_the_live_service(
    pytester: pytest.Pytester,
) -> None:
    """pytest-recording's --block-network is lifted as for recording; the replay's own guard
    lets through the live calls of verify and nothing else: a socket the test opens itself is
    refused, and the test fails although it caught the error."""
    pytester.makepyfile(
        test_api=TESTS
        + """

@pytest.mark.compaction
def test_own_socket():
    import socket
    try:
        socket.create_connection(("127.0.0.1", int(os.environ["OTHER_PORT"])), timeout=2).close()
    except OSError:
        pass
"""
    )
    pytester._monkeypatch.setenv("OPENAI_API_KEY", KEY)
    chosen = ("-k", "test_compact or own_socket")
    with CompactionServer() as recorded, CompactionServer() as other:
        pytester._monkeypatch.setenv("LIVE_BASE", _base(recorded))
        pytester._monkeypatch.setenv("OTHER_PORT", str(other.port))
        pytester.runpytest_subprocess("--compaction-record=once", *chosen).assert_outcomes(
            passed=2, deselected=2
        )
        recorded.clear_requests()
        result = pytester.runpytest_subprocess("--compaction-verify", "--block-network", *chosen)
        result.assert_outcomes(passed=1, failed=1, deselected=2)
        assert [r.path for r in recorded.requests] == ["/v1/responses/compact"]
        assert f"compaction: a connection to 127.0.0.1:{other.port} was refused" in (
            result.stdout.str()
        )
