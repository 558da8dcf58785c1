"""pytest-compaction: record, replay and validate OpenAI ``/responses/compact`` exchanges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import BodyError, CompactionError, SpecError, VersionError

__version__ = "0.1.0"

# Everything else loads on first use: validation pulls in jsonschema-rs, record/replay and the
# server vcrpy, httpx and http.server, and ``import pytest_compaction`` (which starting pytest
# does, for the plugin) stays light.
_LAZY = {
    "DriftNote": "._validate",
    "Report": "._validate",
    "Validator": "._validate",
    "Violation": "._validate",
    "get_validator": "._validate",
    "parse_body": "._validate",
    "validate": "._validate",
    "validate_request": "._validate",
    "validate_response": "._validate",
    "available_versions": "._versions",
    "newest_version": "._versions",
    "resolve_version": "._versions",
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


if TYPE_CHECKING:  # the lazy names, as type checkers see them
    from ._cassette import (
        CassetteError as CassetteError,
    )
    from ._cassette import (
        Exchange as Exchange,
    )
    from ._cassette import (
        load_cassette as load_cassette,
    )
    from ._cassette import (
        save_cassette as save_cassette,
    )
    from ._chain import (
        ChainViolation as ChainViolation,
    )
    from ._chain import (
        check_chain as check_chain,
    )
    from ._chain import (
        check_conversation as check_conversation,
    )
    from ._check import (
        CheckResult as CheckResult,
    )
    from ._check import (
        check_paths as check_paths,
    )
    from ._dialects import (
        Dialect as Dialect,
    )
    from ._dialects import (
        DialectError as DialectError,
    )
    from ._dialects import (
        detect_dialect as detect_dialect,
    )
    from ._dialects import (
        get_dialect as get_dialect,
    )
    from ._dialects import (
        validate_with_dialect as validate_with_dialect,
    )
    from ._fixtures import (
        RecordedExchange as RecordedExchange,
    )
    from ._fixtures import (
        load_compacted_responses as load_compacted_responses,
    )
    from ._fixtures import (
        load_exchanges as load_exchanges,
    )
    from ._import import import_cassette as import_cassette
    from ._proxy import CompactionProxy as CompactionProxy
    from ._recorder import (
        Recording as Recording,
    )
    from ._recorder import (
        ReplayError as ReplayError,
    )
    from ._recorder import (
        RequestNotRecorded as RequestNotRecorded,
    )
    from ._recorder import (
        use_cassette as use_cassette,
    )
    from ._redact import SecretFound as SecretFound
    from ._scan import scan_paths as scan_paths
    from ._schema_diff import (
        SchemaDiff as SchemaDiff,
    )
    from ._schema_diff import (
        diff_versions as diff_versions,
    )
    from ._server import CompactionServer as CompactionServer
    from ._transport import (
        CassetteReplayer as CassetteReplayer,
    )
    from ._transport import (
        Httpx2CassetteTransport as Httpx2CassetteTransport,
    )
    from ._transport import (
        HttpxCassetteTransport as HttpxCassetteTransport,
    )
    from ._transport import (
        RequestNotInCassette as RequestNotInCassette,
    )
    from ._validate import (
        DriftNote as DriftNote,
    )
    from ._validate import (
        Report as Report,
    )
    from ._validate import (
        Validator as Validator,
    )
    from ._validate import (
        Violation as Violation,
    )
    from ._validate import (
        get_validator as get_validator,
    )
    from ._validate import (
        parse_body as parse_body,
    )
    from ._validate import (
        validate as validate,
    )
    from ._validate import (
        validate_request as validate_request,
    )
    from ._validate import (
        validate_response as validate_response,
    )
    from ._versions import (
        available_versions as available_versions,
    )
    from ._versions import (
        newest_version as newest_version,
    )
    from ._versions import (
        resolve_version as resolve_version,
    )


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
