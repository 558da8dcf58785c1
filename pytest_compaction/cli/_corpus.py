"""``pytest-compaction corpus``: record the cassette corpus, or check a folder against it.

Without ``--check`` the corpus is recorded and written into ``--out`` (see
``demo._corpus.write_corpus`` for what is written and what is removed). With ``--check`` it is
recorded into a temporary folder and compared byte for byte with ``--out``, which is left as
it is. Exit 0 when written (or identical), 1 when a recording failed or the folder differs,
2 for a usage problem (the openai SDK missing, an ``--out`` that is not a folder).

``--litellm-proxy`` records ``--out``'s ``litellm-proxy/`` folder instead, through the real
LiteLLM proxy (``demo._corpus_litellm``); with ``--check`` it is compared by shape and verdict,
not bytes. Exit 2 when the proxy is not installed beside the interpreter.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .._errors import CompactionError, counted
from ._common import usage_error
from ._demo import OPENAI_MISSING

DEFAULT_OUT = "cassettes"


def register(commands: Any) -> None:
    corpus = commands.add_parser(
        "corpus",
        help="record the cassette corpus (every scenario, dialect, stream, error, chain and "
        "failure check) deterministically, or check a folder against a fresh recording",
        description="Record the corpus through the openai SDK against the embedded server "
        "(deterministic, one server per cassette, a fixed origin), check every cassette's "
        "verdict, and write it with its README.md and SHA256SUMS. --check records into a "
        "temporary folder and compares it byte for byte with --out instead. Exit 0 when "
        "written or identical, 1 when a recording failed or files differ, 2 for a usage "
        "problem.",
    )
    corpus.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"the corpus folder (default: ./{DEFAULT_OUT})",
    )
    corpus.add_argument(
        "--check",
        action="store_true",
        help="record into a temporary folder and compare with DIR byte for byte; DIR is not "
        "changed",
    )
    corpus.add_argument(
        "--litellm-proxy",
        action="store_true",
        help="record DIR/litellm-proxy/ instead, through the real LiteLLM proxy (started here, "
        "on 127.0.0.1) in front of the embedded server; with --check, compare with DIR/"
        "litellm-proxy/ by shape and verdict (ids, tokens, timestamps normalised), not bytes",
    )
    corpus.set_defaults(handler=run)


def _usable(out: Path, *, check: bool) -> str | None:
    """Why ``out`` cannot be used, or None; without ``check`` it is created and a probe file
    written there first, so that a folder that cannot take the corpus fails before recording."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a directory"
    if check:
        return None if out.is_dir() else f"--out {out}: no such directory to check"
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"--out {out}: cannot write the corpus there: {exc.strerror or exc}"
    return None


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("openai") is None:
        return usage_error("corpus", OPENAI_MISSING)
    if not args.out.strip():
        return usage_error("corpus", "--out is empty: name the folder to write the corpus to")
    out = Path(args.out)
    if args.litellm_proxy:
        return _run_litellm(out, check=args.check)
    problem = _usable(out, check=args.check)
    if problem is not None:
        return usage_error("corpus", problem)
    from ..demo._corpus import build_corpus, compare_folders, write_corpus

    started = time.monotonic()
    corpus = build_corpus()
    seconds = time.monotonic() - started
    for entry, why in corpus.skipped:
        print(f"skipped   {entry.path}: {why}")
    if not corpus.ok:
        for line in corpus.problems:
            print(f"problem   {line}")
        print(
            f"FAILED: {counted(len(corpus.problems), 'cassette')} not recorded as expected; "
            f"{out} left as it was"
        )
        return 1
    size = sum(len(data) for data in corpus.files.values())
    recorded = (
        f"{counted(len(corpus.recorded), 'cassette')} recorded in {seconds:.1f} s "
        f"({counted(len(corpus.files), 'file')}, {size} bytes)"
    )
    if args.check:
        with tempfile.TemporaryDirectory(prefix="pytest-compaction-corpus-") as fresh:
            write_corpus(Path(fresh), corpus.files)
            try:
                found = compare_folders(Path(fresh), out)
            except OSError as exc:
                where = exc.filename or out
                return usage_error("corpus", f"--check: cannot read {where}: {exc.strerror}")
        for label, paths in (
            ("differs", found.differ),
            ("missing", found.missing),
            ("extra", found.extra),
        ):
            for path in paths:
                print(f"{label.ljust(9)} {out / path}")
        if not found.same:
            print(
                f"DIFFERENT: {recorded}; {out}: {len(found.differ)} differ, "
                f"{len(found.missing)} missing, {len(found.extra)} extra. Re-record with: "
                f"pytest-compaction corpus --out {out}"
            )
            return 1
        print(f"OK: {recorded}; {out} is identical, byte for byte")
        return 0
    try:
        done = write_corpus(out, corpus.files)
    except (OSError, CompactionError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return usage_error("corpus", f"--out {out}: cannot write the corpus: {detail}")
    for path in done.removed:
        print(f"removed   {out / path} (no longer recorded)")
    for path in done.kept:
        print(
            f"kept      {out / path} (no longer recorded, but changed since written: not removed)"
        )
    print(
        f"OK: {recorded}; {len(done.written)} written, {len(done.unchanged)} unchanged, "
        f"{len(done.removed)} removed in {out}"
    )
    return 0


def _run_litellm(out: Path, *, check: bool) -> int:
    """``--litellm-proxy``: record ``out/litellm-proxy/`` through the proxy, or check it."""
    from ..demo._corpus_litellm import (
        FOLDER,
        LiteLLMMissing,
        build_litellm,
        check_litellm,
        require_proxy,
        summary,
        write_litellm,
    )

    folder = out / FOLDER
    try:
        require_proxy()
    except LiteLLMMissing as exc:
        return usage_error("corpus", exc)
    problem = _usable(out if check else folder, check=check)
    if problem is not None:
        return usage_error("corpus", problem)
    if check and not folder.is_dir():
        return usage_error("corpus", f"--out {out}: no {FOLDER}/ directory to check")
    started = time.monotonic()
    try:
        recorded = build_litellm()
    except CompactionError as exc:
        print(f"FAILED: {exc}; {folder} left as it was")
        return 1
    seconds = time.monotonic() - started
    if not recorded.ok:
        for line in recorded.problems:
            print(f"problem   {line}")
        print(
            f"FAILED: {counted(len(recorded.problems), 'problem')} recording through the "
            f"LiteLLM proxy; {folder} left as it was"
        )
        return 1
    said = summary(recorded, seconds)
    if check:
        found = check_litellm(folder, recorded)
        for line in found.differences:
            print(f"differs   {line}")
        if not found.same:
            print(
                f"DIFFERENT: {said}; {folder}: {counted(len(found.differences), 'difference')} "
                "beyond normalised values (folder -> fresh recording). Re-record with: "
                f"pytest-compaction corpus --litellm-proxy --out {out}"
            )
            return 1
        print(
            f"OK: {said}; {folder} has the same shape and verdicts "
            f"({counted(found.normalised, 'normalised value')} differ)"
        )
        return 0
    try:
        written = write_litellm(folder, recorded.files)
    except OSError as exc:
        return usage_error("corpus", f"--out {out}: cannot write {FOLDER}/: {exc.strerror or exc}")
    except CompactionError as exc:
        return usage_error("corpus", f"--out {out}: {exc}")
    print(
        f"OK: {said}; {len(written)} written, "
        f"{len(recorded.files) - len(written)} unchanged in {folder}"
    )
    return 0
