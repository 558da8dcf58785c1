"""The pytest plugin: a marker, fixtures and options around :func:`use_cassette`.

``@pytest.mark.compaction`` gives a test the cassette ``<cassette dir>/<module>/<test>.yaml``;
plain ``pytest`` replays it, ``pytest --compaction-record=once`` records it.

The shell only: each part is a plugin module of its own, registered in this order (options
first, so their group heads the help):

- ``_options``: command-line options, ini keys, the marker, and where a test's cassette lives;
- ``_fixtures``: ``compaction_config``, ``compaction_cassette_dir``, ``compaction_exchanges``,
  ``compaction_server``;
- ``_cassette``: the ``compaction_cassette`` fixture and the test's failure;
- ``_summary``: the counts of every test, across xdist workers, and the terminal summary;
- ``_collect``: cassettes collected as test items (``--compaction-check-cassettes``);
- ``_proxy_fixture``: the ``compaction_proxy`` fixture;
- ``_orphans``: cassette files no collected test uses (``--compaction-orphans``).

``--compaction-verify``'s findings are ``_live``'s, judged by ``_cassette``.

Starting pytest loads this shell only: the recorder (and vcrpy), the checks and the proxy load
inside the fixtures and hooks that use them, so a run without compaction tests pays for none
of it.
"""

from __future__ import annotations

pytest_plugins = [
    "pytest_compaction.plugin._options",
    "pytest_compaction.plugin._fixtures",
    "pytest_compaction.plugin._cassette",
    "pytest_compaction.plugin._summary",
    "pytest_compaction.plugin._collect",
    "pytest_compaction.plugin._proxy_fixture",
    "pytest_compaction.plugin._orphans",
]
