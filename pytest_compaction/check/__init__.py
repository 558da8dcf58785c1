"""Judging recordings already on disk: ``pytest-compaction check`` and ``import`` as a library.

``_run`` reads cassettes and judges their exchanges; ``_results`` holds the result types;
``_explain`` says what a version change did to a verdict; ``_report`` writes text and JUnit;
``_import`` brings foreign cassettes into this format.
"""
