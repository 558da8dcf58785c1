"""LiteLLM, as the project's own dev environment has it.

The ``dev`` extra pins ``litellm[proxy]`` (pyproject.toml), so the SDK and the proxy run with this
interpreter, in subprocesses of their own: each installs a socket audit hook of its own, and a
proxy's startup and shutdown stay out of the test process. When litellm or what its proxy needs
is not importable the tests that need it skip, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
LITELLM_VERSION = "1.108.7"  # the dev extra's pin: what the litellm dialect is measured against
INSTALL_COMMAND = "python -m pip install -e '.[dev]'"
# The SDK with its HTTP clients, and what only the [proxy] extra brings (nacl: its id sealing).
SDK_MODULES = ("litellm", "aiohttp")
PROXY_MODULES = ("litellm", "uvicorn", "fastapi", "litellm_proxy_extras", "nacl")


def unavailable(reason: str) -> NoReturn:
    """Skip; under CI, where LiteLLM must be tested, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def litellm_env(**extra: str) -> dict[str, str]:
    """The environment LiteLLM runs in: the one the corpus command starts its proxy in (this
    one, without what could send it off the machine), plus ``extra``."""
    from pytest_compaction.demo._corpus_litellm import proxy_env

    return {**proxy_env(), **extra}


@dataclass(frozen=True)
class LiteLLM:
    """The interpreter LiteLLM runs with, and the release it has."""

    python: Path
    version: str


def require_litellm(modules: tuple[str, ...]) -> LiteLLM:
    """This environment's LiteLLM with ``modules`` importable; else skip (fail under CI).

    A release other than the pinned one fails: the dialect's facts were measured on that one.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        unavailable(
            f"{', '.join(missing)} not importable by {sys.executable}; install the dev extra "
            f"from the repository root: {INSTALL_COMMAND}"
        )
    version = importlib.metadata.version("litellm")
    if version != LITELLM_VERSION:
        pytest.fail(
            f"litellm {version} is installed, the dev extra pins {LITELLM_VERSION}: "
            f"reinstall with {INSTALL_COMMAND}",
            pytrace=False,
        )
    return LiteLLM(Path(sys.executable), version)
