"""Versions a user derived join the bundled ones; the freshness line; overlay usage errors.

A folder named by ``COMPACTION_SCHEMA_PATH``, the ini key ``compaction_schema_path`` or the
option ``--compaction-schema-path`` adds its versions: addressable by name and date, and the
newest of them all is the default. Derivation here is real (the 2026-08-21 spec, through the
``schemas derive`` command), and so are the runs (the CLI in-process; pytest in a subprocess,
since the plugin adds the folders for the rest of its process).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REFERENCE, Upstream

from pytest_compaction.cli import main
from pytest_compaction.schema._versions import SCHEMA_PATH_ENV, available_versions, newest_version

SPEC = REFERENCE / "openai-openapi" / "2026-08-21_f85dbe223d40_openapi.yaml"


def need_spec() -> None:
    if not SPEC.is_file():
        pytest.skip(f"reference spec not found at {SPEC} (only in a full checkout)")


def derive(out: Path, name: str, *overlays: Path) -> Path:
    """``schemas derive`` of the 2026-08-21 spec (and overlays) into ``out/name``."""
    need_spec()
    args = ["schemas", "derive", "--spec", str(SPEC), "--out", str(out), "--name", name]
    for overlay in overlays:
        args += ["--overlay", str(overlay)]
    assert main(args) == 0
    return out / name


def evidence_overlay(path: Path, sdk_version: str) -> Path:
    """An overlay that changes one description and says it covers openai ``sdk_version``."""
    path.write_text(
        "overlay: 1.0.0\n"
        "info: {title: test evidence, version: '1'}\n"
        f"x-evidence: {{package: openai, version: '{sdk_version}', released: '2099-03-01'}}\n"
        "actions:\n"
        "  - target: $.components.schemas.CompactResource\n"
        "    description: a description only\n"
        "    update: {description: the compacted response}\n"
    )
    return path


def write_json(path: Path, body: object) -> Path:
    path.write_text(json.dumps(body))
    return path


# -- the environment variable (the CLI) -----------------------------------------------------------
def test_a_derived_folder_joins_by_name_and_date_and_becomes_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundled_newest = newest_version()
    derive(tmp_path / "mine", "2099-01-01_env-derived")
    capsys.readouterr()
    monkeypatch.setenv(SCHEMA_PATH_ENV, str(tmp_path / "mine"))
    assert available_versions()[-1] == "2099-01-01_env-derived"
    assert newest_version() == "2099-01-01_env-derived"

    assert main(["schemas", "list"]) == 0
    out = capsys.readouterr().out
    [derived] = [line for line in out.splitlines() if line.startswith("2099-01-01_env-derived")]
    # the spec's date comes from its file name, not from the version's name
    assert derived.split() == [
        "2099-01-01_env-derived",
        "2026-08-21",
        "spec",
        SPEC.name,
        "(newest,",
        "default)",
    ]
    [bundled] = [line for line in out.splitlines() if line.startswith(f"{bundled_newest} ")]
    assert "newest" not in bundled

    body = write_json(tmp_path / "request.json", {"model": "gpt-5", "input": []})
    assert main(["validate", "--kind", "request", "--version", "2099-01", str(body)]) == 0
    assert "2099-01-01_env-derived" in capsys.readouterr().out

    monkeypatch.delenv(SCHEMA_PATH_ENV)
    assert newest_version() == bundled_newest  # gone with the setting


def test_a_version_folder_itself_may_be_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = derive(tmp_path, "2099-01-02_one-folder")
    monkeypatch.setenv(SCHEMA_PATH_ENV, str(folder))
    assert newest_version() == "2099-01-02_one-folder"


def test_a_name_clash_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    need_spec()
    bundled = newest_version()
    assert main(["schemas", "derive", "--spec", str(SPEC), "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    clash = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setenv(SCHEMA_PATH_ENV, str(tmp_path))
    if bundled not in clash:
        pytest.skip(f"the newest bundled version {bundled} is not the spec's own derivation")
    assert main(["schemas", "list"]) == 2
    err = capsys.readouterr().err
    assert f"schema version '{bundled}' in {tmp_path} has the name of the one in" in err
    assert "rename one of them (schemas derive --name)" in err
    assert "Traceback" not in err


# -- the freshness line ----------------------------------------------------------------------------
def cassette_of_one_compaction(tmp_path: Path, upstream: Upstream) -> Path:
    from pytest_compaction.replay._recorder import use_cassette

    path = tmp_path / "one.yaml"
    import httpx

    with use_cassette(path, record_mode="once"):
        httpx.post(
            f"{upstream.base_url}/responses/compact",
            json={"model": "gpt-5", "input": [{"role": "user", "content": "hi"}]},
        ).raise_for_status()
    return path


def test_check_says_when_the_installed_sdk_is_newer_than_the_contract(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    upstream: Upstream,
) -> None:
    openai = pytest.importorskip("openai", reason="the freshness line compares the openai SDK")
    cassette = cassette_of_one_compaction(tmp_path, upstream)
    old = evidence_overlay(tmp_path / "old.yaml", "3.0.0")
    derive(tmp_path / "v", "2099-03-01_openai-3.0.0", old)
    capsys.readouterr()
    monkeypatch.setenv(SCHEMA_PATH_ENV, str(tmp_path / "v"))
    assert main(["check", str(cassette)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        f"note: the installed openai {openai.__version__} is newer than openai 3.0.0, the release "
        "schema version 2099-03-01_openai-3.0.0 covers: traffic it sends may be newer than the "
        "contract (update pytest-compaction, or derive a version from a newer spec or overlay)"
    )
    assert main(["check", str(cassette), "--format", "json"]) == 0
    assert "openai 3.0.0" in json.loads(capsys.readouterr().out)["freshness"]

    # a contract that covers the installed release (or a later one) gets no line
    new = evidence_overlay(tmp_path / "new.yaml", "999.0.0")
    derive(tmp_path / "w", "2099-03-02_openai-999.0.0", new)
    capsys.readouterr()
    monkeypatch.setenv(SCHEMA_PATH_ENV, f"{tmp_path / 'v'}:{tmp_path / 'w'}")
    assert main(["check", str(cassette), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["freshness"] is None
    assert main(["check", str(cassette)]) == 0
    assert "note: the installed openai" not in capsys.readouterr().out


# -- the plugin: ini key and option -------------------------------------------------------------
RECORDING_TEST = """
import httpx, pytest
from pytest_compaction import newest_version, validate


@pytest.mark.compaction
def test_recorded():
    assert newest_version() == {name!r}
    assert validate("request", {{"model": "m", "input": []}}, version="2099-03").valid
    httpx.post(
        "{url}/responses/compact", json={{"model": "gpt-5", "input": []}}
    ).raise_for_status()
"""


@pytest.mark.parametrize("how", ["ini", "option"])
def test_the_plugin_adds_folders_from_its_ini_key_and_option(
    pytester: pytest.Pytester, upstream: Upstream, how: str
) -> None:
    pytest.importorskip("openai", reason="the freshness line compares the openai SDK")
    name = "2099-03-01_openai-3.0.0"
    derive(pytester.path / "contracts", name, evidence_overlay(pytester.path / "o.yaml", "3.0.0"))
    pytester.makepyfile(test_rec=RECORDING_TEST.format(name=name, url=upstream.base_url))
    args = ["-p", "no:cacheprovider", "--compaction-record=once"]
    if how == "ini":
        pytester.makeini("[pytest]\ncompaction_schema_path = contracts\n")
    else:
        args.append("--compaction-schema-path=contracts")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    recorded = (pytester.path / "cassettes" / "test_rec" / "test_recorded.yaml").read_text()
    assert f"schema_version: {name}" in recorded
    result.stdout.fnmatch_lines(["note: the installed openai * is newer than openai 3.0.0, *"])


def test_a_missing_schema_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--compaction-schema-path=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*compaction_schema_path: schema path nowhere: no such folder*"])
    assert "Traceback" not in result.stderr.str()


# -- overlays: usage errors name the file and the action ----------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("overlay: 1.0.0\ninfo: {title: t}\nactions: []\n", "'actions' must be a non-empty list"),
        ("openapi: 3.1.0\n", "not an Overlay document (no top-level 'overlay' key)"),
        ("overlay: 2.0.0\ninfo: {title: t}\nactions: [{target: $}]\n", "'2.0.0' is not supported"),
        (
            "overlay: 1.0.0\ninfo: {title: t}\nactions:\n"
            "  - {target: $.components.schemas.NoSuchSchema, update: {description: x}}\n",
            "actions[0] (target $.components.schemas.NoSuchSchema) selects nothing in the spec",
        ),
        (
            "overlay: 1.0.0\ninfo: {title: t}\nactions:\n  - {target: '$[[', update: {}}\n",
            "actions[0]: target '$[[' is not JSONPath",
        ),
        (
            "overlay: 1.0.0\ninfo: {title: t}\nactions:\n  - {target: $.info}\n",
            "actions[0]: has neither 'update' nor 'remove: true'",
        ),
        ("overlay: [unclosed\n", "not valid YAML or JSON"),
    ],
)
def test_a_bad_overlay_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    need_spec()
    overlay = tmp_path / "bad.overlay.yaml"
    overlay.write_text(text)
    args = ["schemas", "derive", "--spec", str(SPEC), "--out", str(tmp_path / "out")]
    assert main([*args, "--overlay", str(overlay)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(overlay) in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_missing_overlay_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_spec()
    args = ["schemas", "derive", "--spec", str(SPEC), "--out", str(tmp_path)]
    assert main([*args, "--overlay", str(tmp_path / "nope.yaml")]) == 2
    assert f"overlay {tmp_path / 'nope.yaml'}: no such file" in capsys.readouterr().err


def test_the_manifest_records_each_overlay_and_its_actions(tmp_path: Path) -> None:
    overlay = evidence_overlay(tmp_path / "o.yaml", "3.0.0")
    folder = derive(tmp_path / "v", "2099-03-01_x", overlay)
    manifest = json.loads((folder / "manifest.json").read_text())
    (entry,) = manifest["overlays"]
    assert entry["file"] == "o.yaml" and len(entry["sha256"]) == 64
    assert entry["evidence"] == {"package": "openai", "version": "3.0.0", "released": "2099-03-01"}
    assert entry["actions"] == [
        {
            "target": "$.components.schemas.CompactResource",
            "change": "update",
            "evidence": "a description only",
        }
    ]
    assert manifest["covers"] == entry["evidence"]
    # the default name comes from the evidence: the release date and the SDK release
    assert main(["schemas", "derive", "--spec", str(SPEC), "--out", str(tmp_path / "d")]) == 0
    assert (
        main(
            [
                "schemas",
                "derive",
                "--spec",
                str(SPEC),
                "--out",
                str(tmp_path / "e"),
                "--overlay",
                str(overlay),
            ]
        )
        == 0
    )
    assert [p.name for p in (tmp_path / "e").iterdir()] == ["2099-03-01_openai-3.0.0"]
