"""The catalogue of what existing data holds: every environment's custom attribute keys (from
its profiles' `attributes`), profile event types and event properties (from its events).

Set-based: one `INSERT … SELECT … GROUP BY` per source over the whole table, never a row
loop. The SQL is a frozen copy of audiences/catalogue/sql.py as it stood when this migration
was written (a migration must not follow later changes of the code). Reversing it empties
the catalogue.
"""

from django.db import migrations

BITS = {
    "postgresql": (
        "CASE jsonb_typeof({v}) WHEN 'string' THEN 1 WHEN 'number' THEN 2 WHEN 'boolean' THEN 4 "
        "WHEN 'array' THEN 8 WHEN 'object' THEN 16 ELSE 32 END"
    ),
    "sqlite": (
        "CASE {v} WHEN 'text' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'true' THEN 4 "
        "WHEN 'false' THEN 4 WHEN 'array' THEN 8 WHEN 'object' THEN 16 ELSE 32 END"
    ),
}

NAMES = {
    "postgresql": [
        # attribute keys
        "SELECT p.environment_id, 'attribute' AS kind, '' AS event_type, a.key, {bit_a} AS bit, "
        "p.created_at AS first_at, p.updated_at AS last_at FROM audiences_profile p "
        "CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(p.attributes) = 'object' THEN p.attributes "
        "ELSE '{{}}'::jsonb END) a",
        # event types and properties, in one pass over the events
        "SELECT p.environment_id, n.kind, n.event_type, n.key, n.bit, e.received_at AS first_at, "
        "e.received_at AS last_at FROM audiences_profileevent e JOIN audiences_profile p ON p.id = e.profile_id "
        "CROSS JOIN LATERAL (SELECT 'event' AS kind, '' AS event_type, e.type AS key, 0 AS bit "
        "UNION ALL SELECT 'event_property', e.type, q.key, {bit_q} FROM jsonb_each(CASE WHEN "
        "jsonb_typeof(e.properties) = 'object' THEN e.properties ELSE '{{}}'::jsonb END) q) n",
    ],
    "sqlite": [
        "SELECT p.environment_id, 'attribute' AS kind, '' AS event_type, a.key, {bit_a} AS bit, "
        "p.created_at AS first_at, p.updated_at AS last_at FROM audiences_profile p, json_each(p.attributes) a "
        "WHERE json_type(p.attributes) = 'object'",
        "SELECT p.environment_id, 'event' AS kind, '' AS event_type, e.type AS key, 0 AS bit, "
        "e.received_at AS first_at, e.received_at AS last_at "
        "FROM audiences_profileevent e JOIN audiences_profile p ON p.id = e.profile_id "
        "UNION ALL SELECT p.environment_id, 'event_property', e.type, q.key, {bit_q}, e.received_at, e.received_at "
        "FROM audiences_profileevent e JOIN audiences_profile p ON p.id = e.profile_id, json_each(e.properties) q "
        "WHERE json_type(e.properties) = 'object'",
    ],
}

UPSERT = """
    INSERT INTO audiences_catalogueentry
        (environment_id, kind, event_type, key, value_types, seen_count, first_seen_at, last_seen_at, pii)
    SELECT environment_id, kind, event_type, key, {types}, COUNT(*), MIN(first_at), MAX(last_at), {false}
    FROM ({names}) names
    WHERE key IS NOT NULL AND key <> '' AND length(key) <= 255 AND length(event_type) <= 64
    GROUP BY environment_id, kind, event_type, key
    ON CONFLICT (environment_id, kind, event_type, key) DO UPDATE SET
        value_types = audiences_catalogueentry.value_types | excluded.value_types,
        seen_count = audiences_catalogueentry.seen_count + excluded.seen_count
"""


def backfill(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in NAMES:
        raise RuntimeError(f"No catalogue backfill for {vendor}")
    bit_a = BITS[vendor].format(v="a.value" if vendor == "postgresql" else "a.type")
    bit_q = BITS[vendor].format(v="q.value" if vendor == "postgresql" else "q.type")
    false = "false" if vendor == "postgresql" else "0"
    # bit_or hashes the few groups; SQLite has none, and SUM(DISTINCT) of powers of two is their OR
    types = "bit_or(bit)" if vendor == "postgresql" else "SUM(DISTINCT bit)"
    with schema_editor.connection.cursor() as cursor:
        for names in NAMES[vendor]:
            cursor.execute(UPSERT.format(names=names.format(bit_a=bit_a, bit_q=bit_q), false=false, types=types))


def forget(apps, schema_editor):
    apps.get_model("audiences", "CatalogueEntry").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0009_catalogue"),
    ]

    operations = [migrations.RunPython(backfill, forget)]
