"""pytest-compaction: record, replay and validate OpenAI ``/responses/compact`` exchanges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import BodyError, CompactionError, SpecError, VersionError

__version__ = "0.1.0"

# Everything else loads on first use: validation pulls in jsonschema-rs, record/replay and the
# server vcrpy, httpx and http.server, and ``import pytest_compaction`` (which starting pytest
# does, for the plugin) stays light.
_LAZY = {
    "DriftNote": ".schema._report",
    "Report": ".schema._report",
    "Validator": ".schema._validate",
    "Violation": ".schema._report",
    "get_validator": ".schema._validate",
    "parse_body": ".schema._validate",
    "validate": ".schema._validate",
    "validate_request": ".schema._validate",
    "validate_response": ".schema._validate",
    "available_versions": ".schema._versions",
    "newest_version": ".schema._versions",
    "resolve_version": ".schema._versions",
    "ChainViolation": ".contract._chain",
    "check_chain": ".contract._chain",
    "check_conversation": ".contract._chain",
    "CheckResult": ".check._results",
    "check_paths": ".check._run",
    "SchemaDiff": ".schema._diff",
    "diff_versions": ".schema._diff",
    "Dialect": ".contract._dialects",
    "DialectError": ".contract._dialects",
    "get_dialect": ".contract._dialects",
    "detect_dialect": ".contract._dialects",
    "validate_with_dialect": ".contract._dialects",
    "CompactionProxy": ".proxy._proxy",
    "CompactionServer": ".server",
    "use_cassette": ".replay._recorder",
    "Recording": ".replay._recorder",
    "ReplayError": ".replay._recorder",
    "StaleCassetteWarning": ".replay._recorder",
    "RequestNotRecorded": ".replay._recorder",
    "SecretFound": ".cassette._redact",
    "CassetteError": ".cassette._exchange",
    "Exchange": ".cassette._exchange",
    "load_cassette": ".cassette._file",
    "save_cassette": ".cassette._file",
    "RecordedExchange": ".replay._fixtures",
    "load_exchanges": ".replay._fixtures",
    "load_compacted_responses": ".replay._fixtures",
    "CassetteReplayer": ".replay._transport",
    "HttpxCassetteTransport": ".replay._transport",
    "Httpx2CassetteTransport": ".replay._transport",
    "RequestNotInCassette": ".replay._transport",
    "scan_paths": ".cassette._scan",
    "import_cassette": ".check._import",
}


if TYPE_CHECKING:  # the lazy names, as type checkers see them
    from .cassette._exchange import CassetteError as CassetteError
    from .cassette._exchange import Exchange as Exchange
    from .cassette._file import load_cassette as load_cassette
    from .cassette._file import save_cassette as save_cassette
    from .cassette._redact import SecretFound as SecretFound
    from .cassette._scan import scan_paths as scan_paths
    from .check._import import import_cassette as import_cassette
    from .check._results import (
        CheckResult as CheckResult,
    )
    from .check._run import (
        check_paths as check_paths,
    )
    from .contract._chain import (
        ChainViolation as ChainViolation,
    )
    from .contract._chain import (
        check_chain as check_chain,
    )
    from .contract._chain import (
        check_conversation as check_conversation,
    )
    from .contract._dialects import (
        Dialect as Dialect,
    )
    from .contract._dialects import (
        DialectError as DialectError,
    )
    from .contract._dialects import (
        detect_dialect as detect_dialect,
    )
    from .contract._dialects import (
        get_dialect as get_dialect,
    )
    from .contract._dialects import (
        validate_with_dialect as validate_with_dialect,
    )
    from .proxy._proxy import CompactionProxy as CompactionProxy
    from .replay._fixtures import (
        RecordedExchange as RecordedExchange,
    )
    from .replay._fixtures import (
        load_compacted_responses as load_compacted_responses,
    )
    from .replay._fixtures import (
        load_exchanges as load_exchanges,
    )
    from .replay._recorder import (
        Recording as Recording,
    )
    from .replay._recorder import (
        ReplayError as ReplayError,
    )
    from .replay._recorder import (
        RequestNotRecorded as RequestNotRecorded,
    )
    from .replay._recorder import (
        StaleCassetteWarning as StaleCassetteWarning,
    )
    from .replay._recorder import (
        use_cassette as use_cassette,
    )
    from .replay._transport import (
        CassetteReplayer as CassetteReplayer,
    )
    from .replay._transport import (
        Httpx2CassetteTransport as Httpx2CassetteTransport,
    )
    from .replay._transport import (
        HttpxCassetteTransport as HttpxCassetteTransport,
    )
    from .replay._transport import (
        RequestNotInCassette as RequestNotInCassette,
    )
    from .schema._diff import (
        SchemaDiff as SchemaDiff,
    )
    from .schema._diff import (
        diff_versions as diff_versions,
    )
    from .schema._report import (
        DriftNote as DriftNote,
    )
    from .schema._report import (
        Report as Report,
    )
    from .schema._report import (
        Violation as Violation,
    )
    from .schema._validate import (
        Validator as Validator,
    )
    from .schema._validate import (
        get_validator as get_validator,
    )
    from .schema._validate import (
        parse_body as parse_body,
    )
    from .schema._validate import (
        validate as validate,
    )
    from .schema._validate import (
        validate_request as validate_request,
    )
    from .schema._validate import (
        validate_response as validate_response,
    )
    from .schema._versions import (
        available_versions as available_versions,
    )
    from .schema._versions import (
        newest_version as newest_version,
    )
    from .schema._versions import (
        resolve_version as resolve_version,
    )
    from .server import CompactionServer as CompactionServer


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
    "StaleCassetteWarning",
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
