"""Shared pieces of the REST API: cursor pagination and the per-app router."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.routers import SimpleRouter


class CursorPagination(pagination.CursorPagination):
    """Stable pages over large tables: the cursor is an opaque position on the id."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = "-id"


class OptionalSlashRouter(SimpleRouter):
    """Paths answer with and without a trailing slash (PRODUCT.md §6). One per app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"
