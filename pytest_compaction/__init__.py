"""pytest-compaction: record, replay and validate OpenAI ``/responses/compact`` exchanges."""

from __future__ import annotations

from ._errors import BodyError, CompactionError, SpecError, VersionError
from ._validate import (
    DriftNote,
    Report,
    Validator,
    Violation,
    get_validator,
    parse_body,
    validate,
    validate_request,
    validate_response,
)
from ._versions import available_versions, newest_version, resolve_version

__version__ = "0.1.0"

# Record/replay and the server pull in vcrpy, httpx and http.server: loaded on first use so
# that validating a body stays a light import.
_LAZY = {
    "ChainViolation": "._chain",
    "check_chain": "._chain",
    "check_conversation": "._chain",
    "CheckResult": "._check",
    "check_paths": "._check",
    "SchemaDiff": "._schema_diff",
    "diff_versions": "._schema_diff",
    "Dialect": "._dialects",
    "DialectError": "._dialects",
    "get_dialect": "._dialects",
    "detect_dialect": "._dialects",
    "validate_with_dialect": "._dialects",
    "CompactionProxy": "._proxy",
    "CompactionServer": "._server",
    "use_cassette": "._recorder",
    "Recording": "._recorder",
    "ReplayError": "._recorder",
    "RequestNotRecorded": "._recorder",
    "SecretFound": "._redact",
    "CassetteError": "._cassette",
    "Exchange": "._cassette",
    "load_cassette": "._cassette",
    "save_cassette": "._cassette",
    "RecordedExchange": "._fixtures",
    "load_exchanges": "._fixtures",
    "load_compacted_responses": "._fixtures",
    "CassetteReplayer": "._transport",
    "HttpxCassetteTransport": "._transport",
    "Httpx2CassetteTransport": "._transport",
    "RequestNotInCassette": "._transport",
    "scan_paths": "._scan",
    "import_cassette": "._import",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_compaction' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "BodyError",
    "CassetteError",
    "CassetteReplayer",
    "ChainViolation",
    "CheckResult",
    "CompactionError",
    "CompactionProxy",
    "CompactionServer",
    "Dialect",
    "DialectError",
    "DriftNote",
    "Exchange",
    "Httpx2CassetteTransport",
    "HttpxCassetteTransport",
    "RecordedExchange",
    "Recording",
    "ReplayError",
    "Report",
    "RequestNotInCassette",
    "RequestNotRecorded",
    "SchemaDiff",
    "SecretFound",
    "SpecError",
    "Validator",
    "VersionError",
    "Violation",
    "__version__",
    "available_versions",
    "check_chain",
    "check_conversation",
    "check_paths",
    "detect_dialect",
    "diff_versions",
    "get_dialect",
    "get_validator",
    "import_cassette",
    "load_cassette",
    "load_compacted_responses",
    "load_exchanges",
    "newest_version",
    "parse_body",
    "resolve_version",
    "save_cassette",
    "scan_paths",
    "use_cassette",
    "validate",
    "validate_request",
    "validate_response",
    "validate_with_dialect",
]
