"""The record/replay proxy: any client, in any language, through one HTTP endpoint.

``_proxy`` decides (forward and record, or replay) and keeps the cassette; ``_http`` is the
listener and the forwarding over ``http.server`` and ``http.client``.
"""
