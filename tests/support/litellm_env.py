"""The separate virtual environment LiteLLM runs in.

LiteLLM pins ``openai<3`` while the dev environment needs ``openai>=3``, so the two cannot share
one environment: LiteLLM (and this project, without extras) lives in its own, found at
``<repo>/.venv-litellm`` or wherever ``COMPACTION_LITELLM_VENV`` points. Its absence skips the
tests that need it, except under CI (``CI`` set), where it fails them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_ENV = "COMPACTION_LITELLM_VENV"
LITELLM_REQUIREMENT = "litellm[proxy]==1.106.2"
CREATE_COMMAND = (
    f"python3 -m venv .venv-litellm && .venv-litellm/bin/pip install -e . '{LITELLM_REQUIREMENT}'"
)
# The SDK with its HTTP clients, what only the [proxy] extra brings, and this project.
SDK_MODULES = ("litellm", "aiohttp", "pytest_compaction")
PROXY_MODULES = ("litellm", "uvicorn", "fastapi", "litellm_proxy_extras")

# Variables that could point LiteLLM elsewhere: another interpreter's modules, an HTTP proxy,
# a database, a cache, a license server or a real OpenAI account.
_DROPPED_ENV = (
    "pythonpath",
    "pythonhome",
    "pythonstartup",
    "virtual_env",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "database_url",
    "direct_url",
    "redis_host",
    "redis_url",
    "litellm_license",
    "openai_api_key",
    "openai_base_url",
    "openai_api_base",
    "litellm_master_key",
    "litellm_salt_key",
)


def unavailable(reason: str) -> NoReturn:
    """Skip; under CI, where LiteLLM must be tested, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def venv_dir() -> Path:
    configured = os.environ.get(VENV_ENV, "").strip()
    return Path(configured).expanduser() if configured else ROOT / ".venv-litellm"


def litellm_env(**extra: str) -> dict[str, str]:
    """The environment LiteLLM runs in: this one, without what could send it off the machine."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _DROPPED_ENV}
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # else the price list is downloaded at import
        LITELLM_MODE="PRODUCTION",  # else a .env file found on the way up is loaded
        LITELLM_LOG="ERROR",
        NO_PROXY="*",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Venv:
    path: Path
    python: Path
    missing: tuple[str, ...]  # among SDK_MODULES and PROXY_MODULES
    litellm_version: str | None


# Run by the environment's interpreter: which modules it lacks, and litellm's version.
_PROBE = r"""
import importlib.metadata, importlib.util, json, sys
missing = [name for name in sys.argv[1:] if importlib.util.find_spec(name) is None]
try:
    version = importlib.metadata.version("litellm")
except importlib.metadata.PackageNotFoundError:
    version = None
print(json.dumps({"missing": missing, "version": version}))
"""


@cache
def _probe(path: Path) -> Venv | str:
    bindir = "Scripts" if sys.platform == "win32" else "bin"
    python = path / bindir / ("python.exe" if sys.platform == "win32" else "python")
    if not python.exists():
        return f"no LiteLLM environment at {path} (no {python})"
    modules = sorted(set(SDK_MODULES + PROXY_MODULES))
    try:
        done = subprocess.run(
            [str(python), "-I", "-c", _PROBE, *modules],
            capture_output=True,
            text=True,
            timeout=120,
            env=litellm_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the LiteLLM environment's interpreter {python} did not run: {exc}"
    if done.returncode != 0:
        return f"the LiteLLM environment's interpreter {python} failed: {done.stderr.strip()}"
    found = json.loads(done.stdout)
    return Venv(path, python, tuple(found["missing"]), found["version"])


def require_venv(modules: tuple[str, ...]) -> Venv:
    """The LiteLLM environment, with ``modules`` importable in it; else skip (fail under CI)."""
    where = venv_dir()
    venv = _probe(where.absolute())
    how = (
        f"create it from the repository root with: {CREATE_COMMAND}"
        f" (or point {VENV_ENV} at one made the same way)"
    )
    if isinstance(venv, str):
        unavailable(f"{venv}; {how}")
    missing = [name for name in modules if name in venv.missing]
    if missing:
        unavailable(
            f"the LiteLLM environment at {venv.path} lacks {', '.join(missing)}; "
            f"install them with: {venv.python} -m pip install -e {ROOT} '{LITELLM_REQUIREMENT}'"
        )
    return venv
