"""Errors the server answers with, in the shape of the real API's error bodies."""

from __future__ import annotations

from typing import Any

from ..schema._validate import json_type

INVALID_REQUEST = "invalid_request_error"
# The API's words for the type of a value, as its error messages put them.
_API_TYPE_WORDS = {
    "null": "null",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a decimal",
    "string": "a string",
    "array": "an array",
    "object": "an object",
}


class ApiError(Exception):
    """An HTTP error answer: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None,
        code: str | None,
        type: str = INVALID_REQUEST,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, *, param: str | None, code: str | None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def api_type_word(value: Any) -> str:
    """The type of ``value`` in the API's words (``a string``, ``an object``, ``null``...)."""
    return _API_TYPE_WORDS[json_type(value)]
