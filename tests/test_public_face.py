"""The public face: what ``import pytest_compaction`` offers, and what it and pytest load.

``__all__`` is the eager names plus the lazy map, every name resolves, and importing the
package (which starting pytest does, for the plugin) loads neither vcrpy, httpx, httpx2,
http.server nor jsonschema-rs. Each check runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest_compaction
from pytest_compaction import _settings
from pytest_compaction.contract._dialects import DIALECTS
from pytest_compaction.replay._recorder import OPTION_NAMES, RECORD_MODES

HEAVY = ("vcr", "httpx", "httpx2", "http.server", "jsonschema_rs", "yaml", "openai")
EAGER = {"BodyError", "CompactionError", "SpecError", "VersionError", "__version__"}


def fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def test_all_is_the_eager_names_and_the_lazy_map() -> None:
    lazy = set(pytest_compaction._LAZY)
    assert not lazy & EAGER
    assert sorted(pytest_compaction.__all__) == sorted(EAGER | lazy)
    assert len(pytest_compaction.__all__) == len(set(pytest_compaction.__all__))


def test_every_public_name_resolves_in_a_fresh_interpreter() -> None:
    out = fresh(
        "import json, pytest_compaction as p\n"
        "print(json.dumps({n: type(getattr(p, n)).__name__ for n in p.__all__}))"
    )
    kinds = json.loads(out)
    assert set(kinds) == set(pytest_compaction.__all__)
    assert kinds["use_cassette"] == "function" and kinds["CompactionServer"] == "type"
    assert kinds["__version__"] == "str"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        pytest_compaction.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "has no attribute 'no_such_name'" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_importing_the_package_or_the_plugin_loads_nothing_heavy() -> None:
    for module in ("pytest_compaction", "pytest_compaction.plugin"):
        out = fresh(f"import sys, {module}\nprint([m for m in {HEAVY!r} if m in sys.modules])")
        assert json.loads(out.replace("'", '"')) == [], module
    # and using it loads what it needs
    out = fresh(
        "import sys, pytest_compaction as p\n"
        "p.validate('request', {'model': 'm'})\n"
        "print('jsonschema_rs' in sys.modules, 'vcr' in sys.modules)"
    )
    assert out.split() == ["True", "False"]


def test_the_start_up_names_are_the_ones_the_library_uses() -> None:
    assert _settings.DIALECT_NAMES == DIALECTS
    assert _settings.OPTION_NAMES is OPTION_NAMES and _settings.RECORD_MODES is RECORD_MODES


def test_the_package_is_typed_and_runs_as_a_module() -> None:
    assert (Path(pytest_compaction.__file__).parent / "py.typed").is_file()
    done = subprocess.run(
        [sys.executable, "-m", "pytest_compaction", "schemas", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("(newest, default)")
