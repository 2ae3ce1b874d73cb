"""Database functions the audience queries rely on."""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, Func
from django.db.models.functions import SHA256, Lower

# PostgreSQL: generated columns need an IMMUTABLE expression, and convert_to() is only
# STABLE; the encoding is pinned to UTF8, so this wrapper is safe to declare IMMUTABLE.
# Created by migration audiences 0005 before the column that uses it.
EMAIL_HASH_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION marketerapi_email_hash(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT encode(sha256(convert_to(lower($1), 'UTF8')), 'hex') $$
"""


class EmailHash(Func):
    """Hex SHA-256 of the lower-cased email: how suppression lists name people by email."""

    function = "marketerapi_email_hash"
    arity = 1
    output_field = CharField(max_length=64)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return SHA256(Lower(self.source_expressions[0])).as_sql(compiler, connection, **extra)
