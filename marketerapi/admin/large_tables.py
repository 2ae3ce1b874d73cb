"""Building blocks for the admin changelists of large tables (audit events, outbox events,
deliveries, jobs, pushes): no full COUNT(*) or DISTINCT over the table on every page view."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.http import HttpRequest
from django.utils.functional import cached_property

if TYPE_CHECKING:
    from django.template.response import _TemplateForResponseT

# Below this many rows (PostgreSQL's estimate) a list is counted exactly.
EXACT_COUNT_BELOW = 100_000


def estimated_rows(queryset: Any) -> int | None:
    """PostgreSQL's estimate of how many rows `queryset` returns (the planner's, from an
    EXPLAIN: no row is read), or None on another database."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """The changelist of a large table does not COUNT(*) hundreds of thousands of rows on
    every page view: when the planner expects EXACT_COUNT_BELOW rows or more, the count is
    its estimate (and the page says so, `estimated`); a selective filter or search is
    counted exactly."""

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if hasattr(queryset, "query"):
            try:
                estimate = estimated_rows(queryset)
            except Exception:  # an EXPLAIN that fails must not break the page
                estimate = None
            if estimate is not None and estimate >= EXACT_COUNT_BELOW:
                self.estimated = True
                return estimate
        return super().count


class LargeTableMixin:
    """For the ModelAdmin of a table that grows without bound (append-only or machine-written).

    - no full count (`show_full_result_count`), and the planner's estimate instead of a
      count when the list holds EXACT_COUNT_BELOW rows or more (EstimatedCountPaginator);
    - no facet counts (one COUNT per filter choice);
    - a date hierarchy whose links come from the first and last row by id (two index
      probes), not from a SELECT DISTINCT over the table (Django's; see
      marketerapi/templatetags/marketerapi_admin.py);
    - `=field` searches compared exactly and typed, so an index can serve them.
    """

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator: type[Paginator] = EstimatedCountPaginator
    # The type ModelAdmin declares, so a ModelAdmin may take this mixin (django-stubs).
    change_list_template: ClassVar[_TemplateForResponseT | None] = "admin/marketerapi/change_list.html"

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> tuple[Any, bool]:
        """`=field` search fields compare exactly and typed (an id must be a number, a uuid a
        uuid), so an index on the column serves them; Django's `=` is iexact, UPPER(column) =
        UPPER(term), which no plain index serves. Other search fields behave as Django's."""
        fields = [str(f) for f in self.get_search_fields(request)]  # type: ignore[attr-defined]
        exact = [f[1:] for f in fields if f.startswith("=")]
        term = search_term.strip()
        if not exact or not term:
            return super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        from django.contrib.admin.utils import get_fields_from_path
        from django.core.exceptions import ValidationError
        from django.db.models import Q

        match = Q(pk__in=[])
        for path in exact:
            field = get_fields_from_path(queryset.model, path)[-1]
            try:
                value = field.to_python(term)
                if hasattr(field, "run_validators"):
                    field.run_validators(value)
            except (ValidationError, ValueError, TypeError):
                continue  # "abc" is no id: that field cannot match
            match |= Q(**{path: value})
        for path in (f for f in fields if not f.startswith("=")):
            match |= Q(**{f"{path.lstrip('^@')}__icontains": term})
        return queryset.filter(match), False


def distinct_indexed_values(model: Any, column: str, limit: int = 200) -> list[str]:
    """The distinct values of an indexed column in one statement that probes the index once
    per value (a "loose index scan": a recursive CTE asking for the next value up), instead
    of reading every row as SELECT DISTINCT does. For filters on large tables."""
    from django.db import connection

    qn = connection.ops.quote_name
    table, col = qn(model._meta.db_table), qn(column)
    # Table and column names come from the model and are quoted; the only value is a parameter.
    sql = (
        f"WITH RECURSIVE v(val, n) AS ("  # noqa: S608
        f" SELECT (SELECT MIN({col}) FROM {table}), 1"
        f" UNION ALL"
        f" SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > v.val), n + 1 FROM v"
        f" WHERE v.val IS NOT NULL AND n < %s"
        f") SELECT val FROM v WHERE val IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class IndexedValuesFilter(admin.SimpleListFilter):
    """A filter on an indexed text column whose choices are read with
    distinct_indexed_values (set `title`, `parameter_name` and `column`)."""

    column = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = distinct_indexed_values(model_admin.model, _column(self))
        return [(v, v) for v in values]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(**{_column(self): self.value()}) if self.value() else queryset


class RecentValuesFilter(admin.SimpleListFilter):
    """A filter on an unindexed text column whose choices come from the newest `sample`
    rows (an index scan by id), plus the chosen value; any value works in the URL."""

    column = ""
    sample = 2000

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        column = _column(self)
        recent = model_admin.model._default_manager.order_by("-pk").values_list(column, flat=True)[: self.sample]
        values = {v for v in recent if v}
        if self.value():
            values.add(self.value())
        return [(v, v) for v in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(**{_column(self): self.value()}) if self.value() else queryset


def _column(list_filter: IndexedValuesFilter | RecentValuesFilter) -> str:
    return str(list_filter.column or list_filter.parameter_name)
