"""Recording and replaying in the test's process.

``_recorder`` is all the vcrpy glue (``use_cassette``, ``Recording``); ``_match`` says which
recorded exchange answers a request; ``_netguard`` keeps replay off the network;
``_transport`` answers httpx and httpx2 clients from a cassette without patching;
``_fixtures`` gives recorded exchanges as data (no pytest).
"""
