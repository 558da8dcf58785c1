"""What the compaction contract asks of an exchange, beyond one body's schema.

``_routes`` says which call a URL is; ``_dialects`` holds the gateway profiles with their
``overlays/``; ``_events`` judges event streams; ``_judge`` is the one rule for which bodies of
an exchange are validated and as what; ``_tally`` counts what was judged and words the "does
not conform" headline; ``_chain`` holds the chaining rules across exchanges, over ``_turns``
(an exchange as a turn), ``_items`` (comparing items) and ``_links`` (which earlier answer a
request continues).

Imports ``schema`` and ``cassette``, never what records, replays or serves.
"""
