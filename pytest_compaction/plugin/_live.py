"""``--compaction-verify``: what the live answers to a test's replayed exchanges say.

Each live call the recording made (``replay._verify``) is judged as recording judges (the
contract judge, under the cassette's version, dialect and strictness, through ``check``) and
compared with the recorded exchange by ``check``'s diff engine (ids, tokens, timestamps and
usage counts normalised):

- a verdict change (the recorded answer valid and the live one not, or the other way), a
  live call that brought no answer, and a live 401 or 403 where the recording had none (the
  client sent no real key) fail the test;
- any other difference (status, route, a field or list item added, removed or changed) is
  drift, listed in the terminal summary with the test, the exchange index and the fields;
- a request that could not be sent live (a chain whose earlier turn was not verified) is
  listed as skipped, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._errors import CompactionError

_REFUSED = (401, 403)  # what a service answers to a missing or placeholder key


@dataclass
class LiveFindings:
    """What the live calls of one test found, as lines for its failure and the summary."""

    sent: int = 0
    failures: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failures": list(self.failures),
            "drift": list(self.drift),
            "skipped": list(self.skipped),
        }


def evaluate(recording: Any, start: int = 0) -> LiveFindings:
    """The findings of ``recording.live_calls[start:]``."""
    from ..check._diff import compare_exchanges
    from ..check._run import check_exchange

    out = LiveFindings()
    for call in recording.live_calls[start:]:
        recorded = call.recorded
        name = f"exchange {call.index} ({recorded.method} {recorded.path})"
        if call.skipped is not None:
            out.skipped.append(f"{name}: not sent live: {call.skipped}")
            continue
        if call.live is None:
            out.failures.append(
                f"compaction verify: {name} of cassette {recording.path}: the live call "
                f"brought no answer: {call.error}"
            )
            continue
        out.sent += 1
        try:
            version = recording.version
            dialect = recording.dialect_for(recorded.uri)
            old = check_exchange(recorded, version, strict=recording.strict, dialect=dialect)
            new = check_exchange(call.live, version, strict=recording.strict, dialect=dialect)
        except CompactionError as exc:
            out.failures.append(f"compaction verify: {name} of cassette {recording.path}: {exc}")
            continue
        diff = compare_exchanges(recorded, call.live, call.index, old_result=old, new_result=new)
        if call.live.status in _REFUSED and recorded.status not in _REFUSED:
            out.failures.append(
                f"compaction verify: {name} of cassette {recording.path}: the live service "
                f"refused the credentials the client sent (HTTP {call.live.status}); verify "
                "sends the request as the client made it, so run it with the real key in the "
                "client's environment"
            )
        if diff.verdict is not None:
            was = "valid" if diff.old_passed else "invalid"
            now = "invalid" if diff.old_passed else "valid"
            lines = [
                f"compaction verify: {name} of cassette {recording.path} is {diff.verdict} "
                f"live: the recorded answer is {was} under {version} ({dialect.name}), the "
                f"live one {now}"
            ]
            lines += [f"  {line}" for line in diff.violations]
            out.failures.append("\n".join(lines))
        changes: list[str] = []
        if diff.status_changed:
            changes.append(f"status {diff.old_status} -> {diff.new_status}")
        if diff.old_route != diff.new_route:
            changes.append(f"route {diff.old_route} -> {diff.new_route}")
        changes += [str(change) for change in diff.changes]
        if changes:
            out.drift.append(f"{name}: " + "; ".join(changes))
    mask = recording._credentials.mask  # a live answer may quote what it was sent
    out.failures = [mask(line) for line in out.failures]
    out.drift = [mask(line) for line in out.drift]
    out.skipped = [mask(line) for line in out.skipped]
    return out
