"""Refusals of configuration changes. `InvalidConfig` is what a validator says about one
value (the admin forms show it on the field; the services turn it into a 422 problem);
the others are problems the services raise."""

from __future__ import annotations

from marketerapi.problems import InvalidInput


class InvalidConfig(ValueError):
    """A configuration value does not have the documented shape; the message says how to fix it."""


class ImmutableField(InvalidInput):
    """An environment's slug and data kind are set once."""

    code = "immutable_field"


class TeamIsARole(InvalidInput):
    code = "team_is_a_role"


class RoleGroupReadOnly(InvalidInput):
    code = "role_group_read_only"
