"""The membership table carries one index per access path and no more: every published
member writes one entry into each."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_membership_is_indexed_by_its_primary_key_and_by_profile_only():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "audiences_membership")

    primary = [info["columns"] for info in constraints.values() if info["primary_key"]]
    other_indexes = [info["columns"] for info in constraints.values() if info["index"] and not info["primary_key"]]
    foreign_keys = sorted(tuple(info["columns"]) for info in constraints.values() if info["foreign_key"])

    assert len(primary) == 1 and set(primary[0]) == {"version_id", "profile_id"}
    if connection.vendor == "postgresql":
        # (SQLite's introspection does not report the order.) Version first: its prefix
        # serves every lookup by version, so version_id needs no index of its own.
        assert primary[0] == ["version_id", "profile_id"]
    assert other_indexes == [["profile_id"]], constraints
    assert foreign_keys == [("profile_id",), ("version_id",)]
