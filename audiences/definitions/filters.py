"""The filters of the audience list, one definition for every door: the API applies them
with DRF's filter backend, the portal through `definitions.selectors.audience_list(filters=…)`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters

from audiences.models import Audience, AudienceState, Channel
from marketerapi.api import StrictFilterSet
from marketerapi.problems import InvalidInput

# What to do about a bad value of each filter.
HINTS = {
    "state": f"Use one of: {', '.join(AudienceState.values)}.",
    "channel": f"Use one of: {', '.join(Channel.values)}.",
}


class AudienceFilter(StrictFilterSet):
    team = filters.CharFilter(field_name="owner_team__name", help_text="The owning team's name.")
    state = filters.ChoiceFilter(choices=AudienceState.choices)
    channel = filters.ChoiceFilter(choices=Channel.choices)
    q = filters.CharFilter(method="filter_q", help_text="Part of the name, any case.")

    class Meta:
        model = Audience
        fields: ClassVar[list[str]] = []

    def filter_q(self, queryset: Any, name: str, value: str) -> Any:
        return queryset.filter(Q(name__icontains=value.strip()))


def audiences_filtered(audiences: QuerySet[Audience], values: Mapping[str, str]) -> QuerySet[Audience]:
    """`audiences` narrowed by the filters given (empty values are no filter). An unknown
    filter is 400 `unknown_query_parameter`; bad values are one 422 `invalid_input` with
    each field's problem and what to do about it."""
    filterset = AudienceFilter({name: value for name, value in values.items() if value}, queryset=audiences)
    if filterset.is_valid():
        return filterset.qs
    errors = [
        {
            "pointer": f"/{name}",
            "code": "invalid_choice",
            "message": " ".join(str(message) for message in messages),
            "hint": HINTS.get(name, "Clear the filter and try again."),
        }
        for name, messages in filterset.errors.items()
    ]
    raise InvalidInput(
        f"{len(errors)} filter value(s) are not valid.",
        title="Some filter values are not valid",
        hint="Pick the filters from the lists.",
        errors=errors,
    )
