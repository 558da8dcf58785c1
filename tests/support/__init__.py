"""Helpers the tests share.

Loopback servers, the independent reading of the spec, today's API shapes, LiteLLM environments.
"""
