"""The credentials a recording really used, the secrets a user allows, and masked messages.

A recorder (``use_cassette``, the proxy) collects, before it redacts a request, the values of
the headers and query parameters it filters as credentials (``authorization`` without its
scheme, ``api-key``, ``x-api-key``, ...) and those of the usual environment variables. They
live in this object only, in memory: the write gate searches every byte of a cassette for them
(``SecretPolicy.known``), so a user's own key echoed back in a body is refused whatever its
shape, and every message a recorder prints is masked with them as well as with the key
patterns.

``allow_secrets`` is the one way to record a key on purpose (a test's fake ``sk-test-0000...``):
strings are exact values, ``re.compile(...)`` objects patterns a whole candidate must match.
A refused write gets advice that fits where the key sits: a header is filtered, a body or URL
is scrubbed with a hook, or the key is allowed when it is a fake one.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from .._errors import CompactionError
from ..cassette._redact import SecretFound
from ..cassette._secrets import (
    Finding,
    SecretPolicy,
    credential_sized,
    known_credentials,
    mask_secrets,
)
from ..contract._judge import Judged
from ..schema._report import Report

MASK = "<secret>"
# A masked key glued to more token characters (the secret of an AWS pair after its id): the
# rest goes too.
_GLUED = re.compile(re.escape(MASK) + r"[:.]?[A-Za-z0-9+/=_\-]{8,}")
# A long token a message cut short ("eyJhbGciOi…"): no pattern knows a piece, so it goes.
_CUT = re.compile(r"[A-Za-z0-9+/=_\-.~]{16,}(?=…)")
# Filtered for what they are, not credentials to look for: a cookie header is many name=value
# pairs, most of them harmless words; an organization or project id is named in the API's
# own error messages ("Rate limit reached ... in organization org-...").
_NOT_LOOKED_FOR = frozenset({"cookie", "set-cookie", "openai-organization", "openai-project"})
# Headers whose value starts with an authentication scheme ("Bearer", "Basic").
_SCHEMED = frozenset({"authorization", "proxy-authorization"})


def _scheme_stripped(value: str) -> Iterator[str]:
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if not token:
        yield scheme
        return
    yield token
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return
        yield from (part for part in (password, user) if part)


def header_credentials(headers: Iterable[tuple[str, str]], names: Iterable[str]) -> Iterator[str]:
    """The values of the named headers that are credentials (a scheme such as ``Bearer`` cut)."""
    wanted = {n.lower() for n in names} - _NOT_LOOKED_FOR
    for name, value in headers:
        lname = name.lower()
        if lname not in wanted or not isinstance(value, str):
            continue
        yield from (_scheme_stripped(value) if lname in _SCHEMED else (value.strip(),))


def query_credentials(uri: str, names: Iterable[str]) -> Iterator[str]:
    """The values of the named query parameters of ``uri``."""
    wanted = {n.lower() for n in names}
    query = urlsplit(uri).query
    if query:
        yield from (v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() in wanted)


def parse_allow(value: Any) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """``allow_secrets``: exact strings and compiled patterns (a lone one needs no list)."""
    if value is None:
        return frozenset(), ()
    items = [value] if isinstance(value, str | re.Pattern) else value
    try:
        items = list(items)
    except TypeError:
        items = [items]
    values: list[str] = []
    patterns: list[re.Pattern[str]] = []
    for item in items:
        if isinstance(item, re.Pattern) and isinstance(item.pattern, str):
            patterns.append(item)
        elif isinstance(item, str) and item:
            values.append(item)
        else:
            # The type only: the value itself may be a key.
            raise CompactionError(
                "allow_secrets takes exact strings and re.compile(...) patterns, "
                f"not {type(item).__name__}"
            )
    return frozenset(values), tuple(dict.fromkeys(patterns))


def compile_pattern(text: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise CompactionError(f"{where}: not a regular expression: {exc}") from None


@dataclass(frozen=True)
class Advice:
    """What a refusal suggests, by where the secret sits."""

    header: str
    body: str
    document: str


RECORDER_ADVICE = Advice(
    header=(
        "Filter the header with compaction_filter_headers (ini) / 'filter_headers' in "
        "compaction_config, or scrub the body with a before_record_request/response hook."
    ),
    body=(
        "A body or URL holds it: scrub it with a before_record_request/before_record_response "
        "hook; or, if it is a fake key the test sends on purpose, allow it with "
        "allow_secrets=[...] (the compaction marker, compaction_config or use_cassette; the "
        "ini key compaction_allow_secrets)."
    ),
    document=(
        "The cassette's own fields hold it (metadata): remove it there; or, if it is a fake "
        "key, allow it with allow_secrets=[...]."
    ),
)
PROXY_ADVICE = Advice(
    header=(
        "Filter the header (--filter-header, or filter_headers in compaction_config) so that it "
        "never reaches the cassette."
    ),
    body=(
        "A body or URL holds it, which the proxy cannot scrub; if it is a fake key the client "
        "sends on purpose, allow it with --allow-secret VALUE or --allow-secret-pattern RE "
        "(allow_secrets on the compaction_proxy marker, in compaction_config or the ini key "
        "compaction_allow_secrets)."
    ),
    document=(
        "The cassette's own fields hold it (metadata): remove it there; or, if it is a fake "
        "key, allow it with --allow-secret VALUE or --allow-secret-pattern RE."
    ),
)


def advice_lines(findings: Sequence[Finding], advice: Advice) -> list[str]:
    """The advice that fits the places of ``findings``, each kind of place once."""
    places = {_place(f) for f in findings}
    return [
        text
        for place, text in (
            ("header", advice.header),
            ("body", advice.body),
            ("document", advice.document),
        )
        if place in places
    ]


def _place(finding: Finding) -> str:
    if finding.part == "document":
        return "document"
    return "header" if finding.location.startswith("header") else "body"


class SecretRefused(SecretFound):
    """:class:`SecretFound` whose advice fits where the secrets sit and who records."""

    def __init__(self, found: SecretFound, advice: Advice) -> None:
        super().__init__(found.path, found.findings)
        lines = str(found).split("\n")
        # The headline and the places listed under it stay; the closing advice is replaced.
        kept = [lines[0], *(line for line in lines[1:] if line.startswith("  "))]
        self.args = ("\n".join([*kept, *advice_lines(found.findings, advice)]),)


def refusal(found: SecretFound, advice: Advice) -> SecretRefused:
    return found if isinstance(found, SecretRefused) else SecretRefused(found, advice)


def _base64_forms(value: str) -> Iterator[str]:
    """The runs that stand for ``value`` in any base64 text holding it, at each byte offset."""
    data = value.encode("utf-8", "surrogatepass")
    for offset in range(3):
        run = data[offset:]
        run = run[: len(run) - len(run) % 3]
        if len(run) >= 9:
            yield base64.b64encode(run).decode("ascii")
            yield base64.urlsafe_b64encode(run).decode("ascii")


@dataclass(eq=False, repr=False)
class Credentials:
    """What one recording knows about secrets: allowed ones, and the ones really used.

    Thread-safe (the proxy learns from its handler threads). Never written, never printed:
    ``repr`` shows counts only.
    """

    allow_values: frozenset[str] = frozenset()
    allow_patterns: tuple[re.Pattern[str], ...] = ()
    environ: Mapping[str, str] | None = None
    _known: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _masks: tuple[str, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # The key variables' values count from the length their reader accepts.
        self._known |= set(known_credentials(self.environ)) - self.allow_values

    def __repr__(self) -> str:
        return (
            f"Credentials({len(self._known)} known, {len(self.allow_values)} allowed value(s), "
            f"{len(self.allow_patterns)} allowed pattern(s))"
        )

    @classmethod
    def allowing(cls, allow: Any) -> Credentials:
        values, patterns = parse_allow(allow)
        return cls(allow_values=values, allow_patterns=patterns)

    def add(self, values: Iterable[str]) -> None:
        # Short values ("x", "test") would match everywhere: a credential is longer.
        fresh = {v for v in values if credential_sized(v) and v not in self.allow_values}
        with self._lock:
            if not fresh <= self._known:
                self._known |= fresh
                self._masks = None

    def learn(
        self,
        headers: Iterable[tuple[str, str]],
        header_names: Iterable[str],
        uri: str = "",
        query_names: Iterable[str] = (),
    ) -> None:
        """Remember the credentials a request carries (before it is redacted)."""
        self.add([*header_credentials(headers, header_names), *query_credentials(uri, query_names)])

    @property
    def known(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._known))

    def policy(self) -> SecretPolicy:
        return SecretPolicy(
            allow_values=self.allow_values, allow_patterns=self.allow_patterns, known=self.known
        )

    def _mask_forms(self) -> tuple[str, ...]:
        with self._lock:
            if self._masks is None:
                forms: set[str] = set()
                for value in self._known:
                    forms |= {value, quote(value, safe=""), json.dumps(value)[1:-1]}
                    forms.add(repr(value)[1:-1])  # as a protocol error quotes bytes
                    for coded in _base64_forms(value):
                        forms |= {coded, quote(coded, safe="")}
                self._masks = tuple(sorted(forms, key=len, reverse=True))
            return self._masks

    def mask(self, text: str) -> str:
        """``text`` with the known credentials and every key-shaped part masked."""
        for form in self._mask_forms():
            if form in text:
                text = text.replace(form, MASK)
        text = mask_secrets(text)
        if "…" in text:
            text = _CUT.sub(MASK, text)
        return _GLUED.sub(MASK, text) if MASK in text else text

    def mask_data(self, value: Any) -> Any:
        """A copy of JSON-like data with every string (property names too) masked."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask(str(k)): self.mask_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_data(v) for v in value]
        return value

    def mask_report(self, report: Report | None) -> Report | None:
        if report is None or not (report.violations or report.drift):
            return report
        return report._replace(
            violations=tuple(
                v._replace(path=self.mask(v.path), message=self.mask(v.message))
                for v in report.violations
            ),
            drift=tuple(
                d._replace(path=self.mask(d.path), message=self.mask(d.message))
                for d in report.drift
            ),
        )

    def mask_judged(self, judged: Judged) -> Judged:
        if judged.report is None and not judged.notes:
            return judged
        return judged._replace(
            report=self.mask_report(judged.report),
            notes=tuple(self.mask(note) for note in judged.notes),
        )
