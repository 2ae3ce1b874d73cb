"""The API's JSON parser (kept apart from views so DRF settings can import it early).

It refuses, with a problem a client can act on, what would otherwise reach the database
or the interpreter as a 500: a body above MAX_REQUEST_BYTES (413), JSON nested deeper than
MAX_JSON_DEPTH (Python's parser recurses; PostgreSQL's jsonb has its own limit), and NUL
characters (`\u0000`), which PostgreSQL's text and jsonb cannot store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers

from marketerapi.problems import ApplicationError, PayloadTooLarge

# Deeper than any rules tree a person writes (the rules language allows far less), shallow
# enough for every parser and serializer after this one.
MAX_JSON_DEPTH = 64


class JSONTooDeep(ApplicationError):
    status = 400
    code = "json_too_deep"
    title = "The JSON is nested too deeply"
    hint = f"Nest objects and arrays at most {MAX_JSON_DEPTH} levels deep; split deep rule trees into audiences."


class NulCharacter(ApplicationError):
    status = 400
    code = "nul_character"
    title = "The JSON contains a NUL character"
    hint = "Remove the \\u0000 characters from the values listed in `errors`; text may not contain them."


def _pointer(path: tuple[Any, ...]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def check_json(data: Any) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding NUL characters (in keys or
    values); walks the document without recursion."""
    nul: list[str] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise JSONTooDeep(f"The body nests deeper than {MAX_JSON_DEPTH} levels (at {_pointer(path[:8])}/…).")
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    nul.append(_pointer((*path, key)))
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
        elif isinstance(value, str) and "\x00" in value:
            nul.append(_pointer(path))
    if nul:
        raise NulCharacter(
            f"{len(nul)} value(s) contain a NUL character; nothing was applied.",
            errors=[
                {"pointer": pointer, "code": "nul_character", "message": "Contains \\u0000.", "hint": "Remove it."}
                for pointer in sorted(nul)[:50]
            ],
        )


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies above MAX_REQUEST_BYTES with a 413 first, and then
    JSON too deep or holding NUL characters (check_json).

    DRF reads the stream directly, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never fires.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        if request is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.MAX_REQUEST_BYTES:
                raise PayloadTooLarge(
                    f"The body is {length:,} bytes; the limit is {settings.MAX_REQUEST_BYTES:,}.",
                    hint=f"Split the batch into requests of at most {settings.BULK_MAX_ROWS:,} rows.",
                )
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise JSONTooDeep("The body nests objects and arrays too deeply to read.") from None
        check_json(data)
        return data
