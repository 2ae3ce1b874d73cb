"""Template tags of the admin site (marketerapi/admin/large_tables.py).

`bounded_date_hierarchy` replaces Django's `date_hierarchy` on the changelists of large
tables. Django's lists the years, months or days that hold rows with a SELECT DISTINCT
over every matching row, on every page view: seconds on an audit trail of millions of
events. This one reads the first and the last matching row by id (two index probes) and
lists the calendar between them, so a link may lead to a month without rows; the rows'
times follow their ids (they are stamped when written), which is what makes it exact
enough. When the whole list fits on the page (a search), its rows give the bounds
without a query. The choices have the shape Django's template (admin/date_hierarchy.html) expects.
"""

from __future__ import annotations

import calendar
import datetime
from typing import Any

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()


def _local(value: Any) -> Any:
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        return timezone.localtime(value)
    return value


def _value(row: Any, field_name: str) -> Any:
    for part in field_name.split("__"):
        row = getattr(row, part, None)
    return row


def _day(value: Any) -> datetime.date:
    return value.date() if isinstance(value, datetime.datetime) else value


def _bounds(cl: Any, field_name: str) -> tuple[Any, Any]:
    """The field's value on the first and the last row by id of the filtered list; read from
    the page itself when the whole list is on it (a search for one request id)."""
    if not getattr(cl.paginator, "estimated", False) and cl.result_count <= len(cl.result_list):
        values = [_local(v) for v in (_value(row, field_name) for row in cl.result_list) if v is not None]
        return (min(values), max(values)) if values else (None, None)
    rows = cl.queryset.order_by()
    first = rows.order_by("pk").values_list(field_name, flat=True).first()
    last = rows.order_by("-pk").values_list(field_name, flat=True).first()
    if first is None or last is None:
        return None, None
    first, last = _local(first), _local(last)
    return (first, last) if first <= last else (last, first)


def bounded_date_hierarchy(cl: Any) -> dict[str, Any] | None:
    if not cl.date_hierarchy:
        return None
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = f"{field_name}__year", f"{field_name}__month", f"{field_name}__day"
    year = cl.params.get(year_field)
    month = cl.params.get(month_field)
    day = cl.params.get(day_field)
    # Django hands these over as lists when they come from the query string.
    year, month, day = (v[-1] if isinstance(v, list) else v for v in (year, month, day))

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{field_name}__"])

    first, last = _bounds(cl, field_name)
    if not (year or month or day) and first is not None:
        if first.year == last.year:
            year = first.year
            if first.month == last.month:
                month = first.month

    if year and month and day:
        chosen = datetime.date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        y, m = int(year), int(month)
        days = [datetime.date(y, m, d) for d in range(1, calendar.monthrange(y, m)[1] + 1)]
        days = [d for d in days if _day(first) <= d <= _day(last)] if first is not None else []
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }
    if year:
        y = int(year)
        months = [datetime.date(y, m, 1) for m in range(1, 13)]
        span = ((first.year, first.month), (last.year, last.month)) if first is not None else None
        months = [d for d in months if span is not None and span[0] <= (d.year, d.month) <= span[1]]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: d.month}),
                    "title": capfirst(formats.date_format(d, "YEAR_MONTH_FORMAT")),
                }
                for d in months
            ],
        }
    years = range(first.year, last.year + 1) if first is not None else range(0)
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: str(y)}), "title": str(y)} for y in years],
    }


@register.tag(name="bounded_date_hierarchy")
def bounded_date_hierarchy_tag(parser: Any, token: Any) -> InclusionAdminNode:
    return InclusionAdminNode(  # type: ignore[call-arg]  # the stubs lag Django 5.2
        parser, token, func=bounded_date_hierarchy, template_name="date_hierarchy.html", takes_context=False
    )
