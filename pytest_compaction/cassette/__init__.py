"""Cassettes as files: the exchange model, bodies, event streams, reading, writing, secrets.

``_exchange`` is the model (``Exchange``, ``CassetteData``, headers); ``_body`` decodes and
renders bodies; ``_sse`` reads and writes event streams; ``_file`` loads and saves cassettes
(atomically, within a size limit); ``_find`` is the one rule for which files are cassettes;
``_secrets`` the one place that finds secrets, ``_redact`` the filtering and the gate before a
write; ``_scan`` scans cassettes on disk.

Imports only the root modules: it knows nothing of schemas or of what a route means.
"""
