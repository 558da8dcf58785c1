"""Judging recordings already on disk: ``pytest-compaction check``, ``import`` and ``diff``.

``_run`` reads cassettes and judges their exchanges; ``_results`` holds the result types;
``_explain`` says what a version change did to a verdict; ``_report`` writes text and JUnit;
``_import`` brings foreign cassettes into this format; ``_diff`` compares two recordings of
the same tests, verdicts included.
"""

from ._diff import CassetteDiff, DiffResult, ExchangeDiff, FieldChange, diff_paths

__all__ = ["CassetteDiff", "DiffResult", "ExchangeDiff", "FieldChange", "diff_paths"]
