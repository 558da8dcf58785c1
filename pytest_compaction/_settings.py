"""Names the pytest plugin needs at start-up, kept apart so that starting pytest stays light.

The plugin's options and ini keys are declared whenever pytest starts, in every downstream
project, compaction tests or none; the modules these names belong to (the recorder with
vcrpy, the dialect profiles, the checks) load only when a run uses them.
"""

from __future__ import annotations

RECORD_MODES = ("none", "once", "new_episodes", "all", "rewrite")
# Options of use_cassette that go to vcrpy unchanged.
VCR_PASSTHROUGH = (
    "allow_playback_repeats",
    "drop_unused_requests",
    "record_on_exception",
    "skip_patchers",
    "custom_patches",
)
# Every option use_cassette takes (and so the marker and compaction_config may give).
OPTION_NAMES = frozenset(
    {
        *VCR_PASSTHROUGH,
        "record_mode",
        "version",
        "strict",
        "dialect",
        "filter_headers",
        "filter_query_parameters",
        "before_record_request",
        "before_record_response",
        "ignore_hosts",
        "ignore_localhost",
        "match_on",
        "check_chain",
        "allow_secrets",
        "keep_volatile_headers",
        "max_age",
        "max_age_action",
    }
)
# What a cassette older than ``max_age`` does (``replay._age``).
AGE_ACTIONS = ("warn", "fail", "rerecord")
# The gateway dialects' names, in the order of their profiles in ``_dialects`` (a test guards
# that the two agree).
DIALECT_NAMES = (
    "openai",
    "azure",
    "litellm",
    "truefoundry",
    "bifrost",
    "ollama",
    "vllm",
    "llamastack",
    "xai",
    "openrouter",
    "vercel",
)
# What a file must end with to be read as a cassette by check and collection.
CASSETTE_SUFFIXES = (".yaml", ".yml", ".json")
