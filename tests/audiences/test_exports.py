"""Exports (issue 13): POST /exports/ → a job that streams the live version's members to a
file, masked unless a compliance reviewer's approved PII export; GET /exports/{id}; a signed
download link that expires and cannot be altered, every download audited; expired files
deleted; a failed export never offers a partial file; a field a role may not export with PII
is a 403 naming it, with nothing written."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from audiences.exports import columns, runner, services
from audiences.exports.services import exports_expire
from audiences.models import CatalogueEntry, CatalogueKind, Export, ExportState
from governance.flags.services import flag_set
from governance.models import ApprovalRequest, AuditEvent, OutboxEvent, Outcome
from integrations.models import Job
from tests.factories import AudienceFactory, ProfileFactory


@pytest.fixture(autouse=True)
def exports_dir(settings, tmp_path) -> Path:
    root = tmp_path / "exports"
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}},
    }
    cache.clear()
    return root


def published(environment, count: int = 3, *, attributes: dict | None = None, **kwargs):
    profiles = [
        ProfileFactory(environment=environment, external_id=f"exp-{n}", attributes=dict(attributes or {}))
        for n in range(count)
    ]
    return AudienceFactory(environment=environment, published=profiles, **kwargs)


def run_job(export_id: int) -> Export:
    export = Export.objects.get(pk=export_id)
    runner.export_job_run(export.job_id)
    return Export.objects.get(pk=export_id)


def download(client, export_id: int):
    link = client.get(f"/api/v1/exports/{export_id}/download")
    assert link.status_code == 200, link.json()
    return link.json(), client.get(link.json()["url"])


def content(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_a_masked_csv_export_from_request_to_download(api, sandbox, exports_dir):
    client = api("analyst")
    audience = published(sandbox, 3)

    accepted = client.post(
        "/api/v1/exports/",
        {"audience": audience.pk, "format": "csv", "fields": ["external_id", "email"]},
        format="json",
    )

    assert accepted.status_code == 202, accepted.json()
    export_id = accepted.json()["export"]["id"]
    assert accepted.json()["export"]["state"] == "queued"
    job = Job.objects.get(pk=accepted.json()["export"]["job"]["id"])
    assert job.kind == "export.create"
    created = AuditEvent.objects.get(action="export.create", outcome=Outcome.ALLOWED)
    assert created.changes["fields"] == ["external_id", "email"] and created.changes["pii"] is False

    export = run_job(export_id)
    shown = client.get(f"/api/v1/exports/{export_id}").json()
    assert (shown["state"], shown["rows"], shown["size"]) == ("ready", 3, export.size)
    assert shown["expires_at"] and shown["download"] == f"/api/v1/exports/{export_id}/download"
    assert OutboxEvent.objects.filter(type="export.completed", aggregate_id=str(export_id)).exists()
    assert not list((exports_dir / ".partial").glob("*"))

    _, response = download(client, export_id)
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(content(response))))
    assert rows[0] == ["external_id", "email"]
    assert sorted(rows[1:]) == [[f"exp-{n}", "e***@e***.test"] for n in range(3)]
    downloaded = AuditEvent.objects.get(action="export.download")
    assert downloaded.actor_user_id == client.user.pk and downloaded.target_id == str(export_id)


def test_jsonl_masks_pii_custom_attributes_of_the_catalogue(api, sandbox):
    client = api("operator")
    audience = published(sandbox, 2, attributes={"tier": "gold", "home_address": "1 Main St"})
    now = timezone.now()
    for key, pii in (("tier", False), ("home_address", True)):
        CatalogueEntry.objects.create(
            environment=sandbox, kind=CatalogueKind.ATTRIBUTE, key=key, first_seen_at=now, last_seen_at=now, pii=pii
        )
    fields = ["external_id", "phone", "attributes.tier", "attributes.home_address"]

    accepted = client.post(
        "/api/v1/exports/", {"audience": audience.pk, "format": "jsonl", "fields": fields}, format="json"
    )
    run_job(accepted.json()["export"]["id"])

    _, response = download(client, accepted.json()["export"]["id"])
    lines = [json.loads(line) for line in content(response).splitlines()]
    assert lines[0] == {
        "external_id": "exp-0",
        "phone": "***23",
        "attributes.tier": "gold",
        "attributes.home_address": "***",
    }


def test_a_pii_field_for_a_role_that_may_only_export_it_masked_is_403_naming_it(api, sandbox):
    client = api("analyst")
    audience = published(sandbox, 2)

    refused = client.post(
        "/api/v1/exports/",
        {"audience": audience.pk, "fields": ["external_id", "email", "phone"], "pii": True},
        format="json",
    )

    assert refused.status_code == 403
    problem = refused.json()
    assert problem["code"] == "export_field_forbidden"
    assert problem["fields"] == ["email", "phone"] and "email, phone" in problem["detail"]
    assert problem["hint"]
    assert not Export.objects.exists() and not Job.objects.exists()
    assert AuditEvent.objects.filter(action="export.create_pii", outcome=Outcome.DENIED).count() == 1


@pytest.mark.parametrize("who", ["approver", "developer"])
def test_roles_without_exports_are_refused(api, sandbox, who):
    audience = published(sandbox, 1)
    refused = api(who).post("/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id"]}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert not Export.objects.exists()


def test_bad_input_is_refused_with_hints_and_nothing_written(api, sandbox):
    client = api("analyst")
    audience = published(sandbox, 1)

    unknown = client.post(
        "/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id", "emial"]}, format="json"
    )
    assert unknown.status_code == 422 and unknown.json()["code"] == "export_field_unknown"
    assert unknown.json()["errors"][0]["pointer"] == "/fields/1"
    assert "did you mean 'email'" in unknown.json()["errors"][0]["message"]

    twice = client.post("/api/v1/exports/", {"audience": audience.pk, "fields": ["email", "email"]}, format="json")
    assert twice.status_code == 422 and twice.json()["errors"][0]["code"] == "duplicate"

    bad_format = client.post("/api/v1/exports/", {"audience": audience.pk, "format": "xlsx"}, format="json")
    assert bad_format.status_code == 422

    draft = AudienceFactory(environment=sandbox)
    not_live = client.post("/api/v1/exports/", {"audience": draft.pk, "fields": ["external_id"]}, format="json")
    assert not_live.status_code == 409 and not_live.json()["code"] == "export_audience_not_published"
    assert "publish" in not_live.json()["hint"].lower()

    assert not Export.objects.exists() and not Job.objects.exists()


def test_a_compliance_reviewer_exports_pii_unmasked_in_the_sandbox(api, sandbox):
    client = api("compliance")
    audience = published(sandbox, 1)

    accepted = client.post(
        "/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id", "email"], "pii": True}, format="json"
    )

    assert accepted.status_code == 202 and accepted.json()["export"]["pii"] is True
    run_job(accepted.json()["export"]["id"])
    _, response = download(client, accepted.json()["export"]["id"])
    assert content(response).splitlines()[1] == "exp-0,exp-0@example.test"


def test_a_pii_export_in_pilot_needs_the_flag_and_a_compliance_reviewers_approval(api, actor, pilot):
    client = api("compliance", pilot)
    audience = published(pilot, 1)
    body = {"audience": audience.pk, "fields": ["external_id", "email"], "pii": True}

    off = client.post("/api/v1/exports/", body, format="json")
    assert off.status_code == 403 and off.json()["code"] == "feature_disabled"
    assert "turn on exports_pii for your team" in off.json()["hint"]

    flag_set(actor=actor("admin", pilot), flag_name="exports_pii", everyone=True)
    filed = client.post("/api/v1/exports/", body, format="json")

    assert filed.status_code == 202 and "approval" in filed.json()
    request = ApprovalRequest.objects.get()
    assert request.action == "export.create_pii"
    assert not Export.objects.exists()


def test_the_link_is_refused_when_altered_expired_or_asked_by_someone_else(api, sandbox):
    client = api("analyst")
    audience = published(sandbox, 1)
    export_id = client.post(
        "/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id"]}, format="json"
    ).json()["export"]["id"]
    run_job(export_id)
    link = client.get(f"/api/v1/exports/{export_id}/download").json()["url"]

    signature = link.rsplit("/", 1)[1]
    altered = signature.replace(signature[2], "A" if signature[2] != "A" else "B", 1)
    refused = client.get(f"/downloads/exports/{altered}")
    assert refused.status_code == 403 and refused.json()["code"] == "export_link_invalid"

    other = api("compliance").get(f"/api/v1/exports/{export_id}/download")
    assert other.status_code == 403 and other.json()["code"] == "export_not_yours"
    assert api("operator").get(f"/api/v1/exports/{export_id}").status_code == 404

    later = timezone.now() + timedelta(hours=25)
    with pytest.raises(services.ExportLinkExpired):
        services.export_download(signature=signature, now=later)
    assert AuditEvent.objects.filter(action="export.download").count() == 0


def test_expired_files_are_deleted_and_the_status_says_so(api, sandbox, exports_dir):
    client = api("analyst")
    audience = published(sandbox, 1)
    export_id = client.post(
        "/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id"]}, format="json"
    ).json()["export"]["id"]
    export = run_job(export_id)
    assert (exports_dir / export.file_name).exists()

    assert exports_expire(now=timezone.now() + timedelta(hours=23)) == 0
    assert exports_expire(now=timezone.now() + timedelta(hours=25)) == 1

    assert not (exports_dir / export.file_name).exists()
    shown = client.get(f"/api/v1/exports/{export_id}").json()
    assert shown["state"] == "expired" and shown["deleted_at"] and shown["download"] is None
    gone = client.get(f"/api/v1/exports/{export_id}/download")
    assert gone.status_code == 410 and gone.json()["code"] == "export_expired"
    assert AuditEvent.objects.filter(action="export.expire").count() == 1


def test_a_failed_export_never_offers_a_partial_file(api, sandbox, exports_dir, monkeypatch):
    client = api("analyst")
    audience = published(sandbox, 5)
    monkeypatch.setattr(runner, "COPY_FAST_PATH", False)  # the general path (the COPY path: below)
    monkeypatch.setattr(runner, "BATCH", 2)
    written = []
    original = columns.Writer.write_rows

    def fail_on_second_batch(self, rows):
        written.append(len(rows))
        if len(written) == 2:
            raise OSError("disk full")
        original(self, rows)

    monkeypatch.setattr(columns.Writer, "write_rows", fail_on_second_batch)
    export_id = client.post(
        "/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id"]}, format="json"
    ).json()["export"]["id"]

    export = run_job(export_id)

    assert export.state == ExportState.FAILED and export.file_name == "" and "OSError" in export.error
    assert Job.objects.get(pk=export.job_id).state == "failed"
    assert [p for p in exports_dir.rglob("*") if p.is_file()] == []
    refused = client.get(f"/api/v1/exports/{export_id}/download")
    assert refused.status_code == 409 and refused.json()["code"] == "export_not_ready"


def test_the_list_takes_the_same_queries_however_many_exports(api, sandbox, django_assert_max_num_queries):
    client = api("analyst")
    audience = published(sandbox, 1)
    for _ in range(2):
        client.post("/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id"]}, format="json")
    client.get("/api/v1/exports/")
    with django_assert_max_num_queries(8):
        few = client.get("/api/v1/exports/")
    for _ in range(5):
        client.post("/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id"]}, format="json")
    with django_assert_max_num_queries(8):
        many = client.get("/api/v1/exports/")
    assert len(few.json()["results"]) == 2 and len(many.json()["results"]) == 7


@pytest.mark.services
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_on_postgresql_the_copy_path_writes_what_the_general_path_writes(api, sandbox, monkeypatch, fmt):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    client = api("compliance")
    tricky = {"tier": 'gold, "plus"', "note": "line\nbreak \\ back"}
    audience = published(sandbox, 3, attributes=tricky)
    ProfileFactory(environment=sandbox, external_id="no-email", email=None)
    now = timezone.now()
    for key in tricky:
        CatalogueEntry.objects.create(
            environment=sandbox, kind=CatalogueKind.ATTRIBUTE, key=key, first_seen_at=now, last_seen_at=now
        )
    body = {
        "audience": audience.pk,
        "format": fmt,
        "fields": ["external_id", "email", "first_name", "attributes.tier", "attributes.note", "attributes.none"],
        "pii": True,
    }
    CatalogueEntry.objects.create(
        environment=sandbox, kind=CatalogueKind.ATTRIBUTE, key="none", first_seen_at=now, last_seen_at=now
    )

    outputs = []
    for fast in (True, False):
        monkeypatch.setattr(runner, "COPY_FAST_PATH", fast)
        export_id = client.post("/api/v1/exports/", body, format="json").json()["export"]["id"]
        export = run_job(export_id)
        _, response = download(client, export_id)
        outputs.append((content(response), export.rows, export.size))

    assert outputs[0] == outputs[1]
    assert outputs[0][1] == 3


@pytest.mark.services
def test_a_copy_export_failing_midway_never_offers_a_partial_file(api, sandbox, exports_dir, monkeypatch):
    from django.db import connection

    from audiences.exports import copy

    if connection.vendor != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    client = api("analyst")
    audience = published(sandbox, 5)
    monkeypatch.setattr(copy, "CHUNK_ROWS", 2)
    original = runner.copy_members

    def fail_after_the_first_chunk(out, **kwargs):
        def on_chunk(done):
            if done:
                raise OSError("disk full")

        return original(out, **{**kwargs, "on_chunk": on_chunk})

    monkeypatch.setattr(runner, "copy_members", fail_after_the_first_chunk)
    export_id = client.post(
        "/api/v1/exports/", {"audience": audience.pk, "fields": ["external_id"]}, format="json"
    ).json()["export"]["id"]

    export = run_job(export_id)

    assert export.state == ExportState.FAILED and export.file_name == ""
    assert [p for p in exports_dir.rglob("*") if p.is_file()] == []


def test_exports_past_the_environments_job_slots_wait_queued_with_their_position(api, sandbox, settings):
    settings.JOB_SLOTS = {"sandbox": 1, "*": 4}
    client = api("analyst")
    audience = published(sandbox, 2)
    body = {"audience": audience.pk, "fields": ["external_id"]}
    first, second = (client.post("/api/v1/exports/", body, format="json").json()["export"] for _ in range(2))
    Job.objects.filter(pk=first["job"]["id"]).update(state="running", heartbeat_at=timezone.now())

    assert runner.export_job_run(second["job"]["id"]) is None

    assert Export.objects.get(pk=second["id"]).state == "queued"
    job = client.get(f"/api/v1/jobs/{second['job']['id']}").json()
    assert job["state"] == "queued" and job["queue_position"] == 1
