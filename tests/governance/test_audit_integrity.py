"""Audit integrity (issue 12): the application's database role, granted as
docs/operations.md §7 says, cannot UPDATE, DELETE or TRUNCATE audit rows — not even with
the trigger's maintenance setting, which any session may set — and a superuser's direct
edit is found by `manage.py audit_verify` at the row edited."""

from __future__ import annotations

import secrets

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from governance.actors import Actor
from governance.audit import trail as audit
from governance.models import AuditEvent
from tests.conftest import require_service
from tests.governance.test_audit_chain import _tamper

# The grants of docs/operations.md §7, for a role named {app} (the owner runs migrations).
APP_ROLE_GRANTS = """
GRANT USAGE ON SCHEMA public TO {app};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app};
REVOKE UPDATE, DELETE, TRUNCATE ON governance_auditevent FROM {app};
"""


def _record(environment, n: int = 3) -> None:
    for i in range(n):
        audit.record(
            Actor.system(environment), "profile.ingest", ("environment", environment.pk, f"batch {i}"), changes={"n": i}
        )


@pytest.fixture
def app_role(django_db_serialized_rollback, transactional_db):
    """A login role with the documented grants, connected to the test database."""
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "grants are PostgreSQL's; set DATABASE_URL")
    import psycopg

    name = f"mk_app_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} LOGIN")
        for statement in APP_ROLE_GRANTS.format(app=name).strip().splitlines():
            cursor.execute(statement)
    db = connection.settings_dict
    session = psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, dbname=db["NAME"], user=name, autocommit=True
    )
    yield session
    session.close()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {name}")
        cursor.execute(f"DROP ROLE {name}")


@pytest.mark.services
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE governance_auditevent SET action = 'x'",
        "DELETE FROM governance_auditevent",
        "TRUNCATE governance_auditevent CASCADE",
        "ALTER TABLE governance_auditevent DISABLE TRIGGER USER",
    ],
)
def test_the_application_role_cannot_change_audit_rows_even_in_maintenance_mode(app_role, sandbox, sql):
    import psycopg

    _record(sandbox, 2)
    app_role.execute("SET marketerapi.audit_maintenance = 'on'")  # the trigger's bypass: not enough

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_role.execute(sql)

    assert AuditEvent.objects.filter(action="profile.ingest").count() == 2


@pytest.mark.services
def test_the_application_role_can_read_and_append(app_role, sandbox):
    _record(sandbox, 1)

    count = app_role.execute("SELECT count(*) FROM governance_auditevent").fetchone()[0]
    privileges = app_role.execute(
        "SELECT has_table_privilege('governance_auditevent', 'INSERT'),"
        " has_table_privilege('audiences_audience', 'UPDATE'),"
        " has_table_privilege('audiences_audience', 'DELETE')"
    ).fetchone()

    assert count == 1
    assert privileges == (True, True, True)


def test_a_superusers_direct_edit_is_found_by_audit_verify_at_that_row(sandbox, capsys):
    _record(sandbox, 5)
    victim = AuditEvent.objects.order_by("id")[3]
    _tamper("UPDATE governance_auditevent SET changes = %s WHERE id = %s", ['{"n": 99}', victim.pk])

    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")

    assert failure.value.returncode == 1
    assert f"sandbox at event #{victim.pk}" in str(failure.value)
    assert "altered" in str(failure.value)
