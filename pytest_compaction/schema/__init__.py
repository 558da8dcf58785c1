"""The contract as JSON Schemas: reading the spec, deriving versions, validating bodies.

``_spec`` reads an OpenAPI file; ``_translate`` turns its components into JSON Schema;
``_derive`` drives a derivation into a version folder (with ``_overlay`` for changes newer
than the last spec file, ``_passback`` and ``_strict`` for the variants); ``_versions`` finds
and resolves the version folders; ``_validate`` judges one body, and ``_report`` holds what it
returns (``Violation``, ``DriftNote``, ``Report``); ``_diff`` compares two versions.

Imports only the root modules: no cassette, no HTTP.
"""
