"""The API's JSON parser (kept apart from views so DRF settings can import it early)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import parsers

from marketerapi.problems import PayloadTooLarge


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies above MAX_REQUEST_BYTES with a 413 first.

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
        return super().parse(stream, media_type, parser_context)
