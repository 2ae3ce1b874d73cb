"""The destinations API: create, list, show, change, test, health; validation with pointers,
the sandbox rule, permissions, and credentials that never come back."""

from __future__ import annotations

import json

import pytest

from governance.models import AuditEvent, Outcome
from integrations.destinations.credentials import decrypt_credentials
from integrations.models import Destination
from tests.fakes.helpers import BRAZE_CREDENTIALS, braze_config
from tests.refusals import denied_event, refused

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")

URL = "/api/v1/destinations/"
SECRET = "sk-live-SUPERSECRET-4242"


def file_body(tmp_path, name="drop", **config):
    return {"name": name, "adapter": "file", "config": {"directory": str(tmp_path), "format": "jsonl", **config}}


def assert_no_secret(response, *secrets):
    text = response.content.decode()
    for secret in secrets or (SECRET,):
        assert secret not in text, f"{secret!r} leaked into {response.status_code} {text[:300]}"


def test_a_developer_creates_a_file_destination_in_the_sandbox(api, tmp_path, sandbox):
    response = api("developer").post(URL, file_body(tmp_path), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "drop" and body["adapter"] == "file" and body["environment"] == "sandbox"
    assert body["config"] == {"directory": str(tmp_path), "format": "jsonl"}
    assert body["credentials"] == "none" and body["credentials_env"] is None
    assert body["status"] == "unknown" and body["breaker"] == "closed"
    audit = AuditEvent.objects.filter(action="destination.create").get()
    assert audit.environment == sandbox and audit.changes["after"]["credentials"] == "none"


def test_credentials_are_stored_encrypted_and_never_shown_back(api, tmp_path, braze, sleeps, pilot):
    client = api("developer", pilot)
    body = {
        "name": "Braze",
        "adapter": "engagement",
        "config": braze_config(braze),
        "credentials": {"api_key": SECRET},
    }

    created = client.post(URL, body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["credentials"] == "stored"
    destination = Destination.objects.get(pk=created.json()["id"])
    assert SECRET not in destination.credentials_encrypted
    assert decrypt_credentials(destination.credentials_encrypted) == {"api_key": SECRET}

    dest_url = f"{URL}{destination.pk}"
    responses = [
        created,
        client.get(URL),
        client.get(dest_url),
        client.patch(dest_url, {"config": {"campaign_id": "c-9"}}, format="json"),
        client.post(f"{dest_url}/test"),  # the fake refuses this key: a failed test
        client.get(f"{dest_url}/health"),
        client.get("/api/v1/status"),
        client.post(URL, {**body, "config": {"base_url": "nope"}}, format="json"),  # 422
        client.post(URL, {**body, "credentials": {"api_key": SECRET, "extra": SECRET}}, format="json"),  # 422
    ]
    for response in responses:
        assert_no_secret(response)
    assert responses[4].json()["ok"] is False
    for event in AuditEvent.objects.all():
        assert SECRET not in json.dumps(event.changes) + json.dumps(event.reasons)


def test_credentials_from_an_environment_variable_show_only_its_name(api, braze, sleeps, pilot, monkeypatch):
    monkeypatch.setenv("DESTINATION_BRAZE_TEST", BRAZE_CREDENTIALS["api_key"])
    client = api("developer", pilot)
    body = {
        "name": "Braze",
        "adapter": "engagement",
        "config": braze_config(braze),
        "credentials_env": "DESTINATION_BRAZE_TEST",
    }

    created = client.post(URL, body, format="json").json()
    assert created["credentials"] == "env" and created["credentials_env"] == "DESTINATION_BRAZE_TEST"

    tested = client.post(f"{URL}{created['id']}/test").json()
    assert tested["ok"] is True, tested
    assert_no_secret(client.get(f"{URL}{created['id']}"), BRAZE_CREDENTIALS["api_key"])


def test_credentials_variables_must_be_destination_prefixed(api, braze, pilot):
    body = {"name": "x", "adapter": "engagement", "config": braze_config(braze), "credentials_env": "SECRET_KEY"}
    response = api("developer", pilot).post(URL, body, format="json")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["pointer"] == "/credentials_env" and error["code"] == "invalid_credentials_env"


def test_a_missing_environment_variable_fails_the_test_with_a_hint(api, braze, pilot, sleeps):
    client = api("developer", pilot)
    body = {"name": "x", "adapter": "engagement", "config": braze_config(braze), "credentials_env": "DESTINATION_UNSET"}
    created = client.post(URL, body, format="json").json()
    tested = client.post(f"{URL}{created['id']}/test").json()
    assert tested["ok"] is False and "DESTINATION_UNSET is not set" in tested["message"]
    assert "restart" in tested["hint"]


def test_sandbox_refuses_vendor_adapters(api, braze):
    body = {"name": "Braze", "adapter": "engagement", "config": braze_config(braze), "credentials": {"api_key": SECRET}}
    response = api("developer").post(URL, body, format="json")

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_destination"
    (error,) = problem["errors"]
    assert (error["pointer"], error["code"]) == ("/adapter", "sandbox_adapter_not_allowed")
    assert "file or webhook" in error["hint"] and "pilot or production" in error["hint"]
    assert_no_secret(response)


def test_sandbox_refuses_a_webhook_to_a_non_local_host(api):
    body = {"name": "hook", "adapter": "webhook", "config": {"url": "https://hooks.example.com/in"}}
    response = api("developer").post(URL, body, format="json")

    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["pointer"], error["code"]) == ("/config/url", "sandbox_target_not_local")
    assert "127.0.0.1" in error["hint"]


def test_sandbox_accepts_a_loopback_webhook(api):
    body = {"name": "hook", "adapter": "webhook", "config": {"url": "http://127.0.0.1:9999/in"}}
    assert api("developer").post(URL, body, format="json").status_code == 201


def test_bad_config_reports_every_problem_with_a_pointer_and_hint(api, pilot):
    body = {
        "name": "",
        "adapter": "webhook",
        "config": {"url": "ftp://x", "batch_size": 0, "api_key": "oops"},
        "credentials": {"password": "p"},
    }
    response = api("developer", pilot).post(URL, body, format="json")

    assert response.status_code == 422
    pointers = {(e["pointer"], e["code"]) for e in response.json()["errors"]}
    assert pointers == {
        ("/name", "invalid_name"),
        ("/config/api_key", "unknown_config_key"),
        ("/config/batch_size", "out_of_range"),
        ("/credentials/password", "unknown_credential"),
    }
    assert all(e["hint"] for e in response.json()["errors"])
    assert response.json()["request_id"]


def test_url_problems_show_once_the_types_are_right(api, pilot):
    body = {"name": "h", "adapter": "webhook", "config": {"url": "ftp://x"}}
    (error,) = api("developer", pilot).post(URL, body, format="json").json()["errors"]
    assert (error["pointer"], error["code"]) == ("/config/url", "invalid_url")


def test_unknown_adapter_and_missing_credentials(api, pilot, braze):
    client = api("developer", pilot)
    unknown = client.post(URL, {"name": "x", "adapter": "fax", "config": {}}, format="json").json()
    assert (
        unknown["errors"][0]["pointer"] == "/adapter"
        and "crm, engagement, file, webhook" in unknown["errors"][0]["hint"]
    )

    bare = client.post(URL, {"name": "x", "adapter": "engagement", "config": braze_config(braze)}, format="json").json()
    assert [(e["pointer"], e["code"]) for e in bare["errors"]] == [("/credentials", "credentials_required")]


def test_duplicate_names_and_unknown_fields(api, tmp_path):
    client = api("developer")
    assert client.post(URL, file_body(tmp_path), format="json").status_code == 201
    again = client.post(URL, file_body(tmp_path), format="json")
    assert again.status_code == 422 and again.json()["errors"][0]["code"] == "name_taken"
    typo = client.post(URL, {**file_body(tmp_path, "y"), "confg": {}}, format="json")
    assert typo.status_code == 400 and typo.json()["code"] == "unknown_fields"


@pytest.mark.parametrize("who", ["analyst", "operator", "approver", "compliance"])
def test_roles_without_the_permission_get_403(api, who, tmp_path):
    client = api(who)
    refused(client.get(URL), 403, "permission_denied")
    response = client.post(URL, file_body(tmp_path), format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    denied_event(client.user, "destination.create")
    assert "developer" in response.json()["detail"]


def test_a_refused_create_is_audited(api, tmp_path):
    api("analyst").post(URL, file_body(tmp_path), format="json")
    assert AuditEvent.objects.filter(action="destination.create", outcome=Outcome.DENIED).count() == 1


def test_an_admin_may_do_it_too(api, tmp_path):
    assert api("admin").post(URL, file_body(tmp_path), format="json").status_code == 201


def test_another_environments_destination_is_404(api, tmp_path, pilot):
    created = api("developer").post(URL, file_body(tmp_path), format="json").json()
    other = api("developer", pilot)
    for response in (
        other.get(f"{URL}{created['id']}"),
        other.patch(f"{URL}{created['id']}", {"name": "x"}, format="json"),
        other.post(f"{URL}{created['id']}/test"),
        other.get(f"{URL}{created['id']}/health"),
    ):
        assert response.status_code == 404 and response.json()["code"] == "destination_not_found"
    assert other.get(URL).json()["results"] == []


def test_patch_merges_config_replaces_credentials_and_is_audited(api, braze, pilot, sleeps):
    client = api("developer", pilot)
    body = {
        "name": "Braze",
        "adapter": "engagement",
        "config": braze_config(braze),
        "credentials": {"api_key": "old-key-1"},
    }
    created = client.post(URL, body, format="json").json()

    response = client.patch(
        f"{URL}{created['id']}",
        {"config": {"campaign_id": None, "read_timeout": 5}, "credentials": {"api_key": "new-key-2"}},
        format="json",
    )

    assert response.status_code == 200, response.json()
    config = response.json()["config"]
    assert "campaign_id" not in config and config["read_timeout"] == 5 and config["subscription_group_id"] == "sg-1"
    destination = Destination.objects.get(pk=created["id"])
    assert decrypt_credentials(destination.credentials_encrypted) == {"api_key": "new-key-2"}
    audit = AuditEvent.objects.filter(action="destination.update").get()
    assert audit.changes["after"]["credentials_changed"] is True
    assert "new-key-2" not in json.dumps(audit.changes)


def test_patch_cannot_change_the_adapter_or_break_the_config(api, tmp_path):
    client = api("developer")
    created = client.post(URL, file_body(tmp_path), format="json").json()
    adapter = client.patch(f"{URL}{created['id']}", {"adapter": "webhook"}, format="json")
    assert adapter.status_code == 422 and adapter.json()["errors"][0]["code"] == "adapter_immutable"
    broken = client.patch(f"{URL}{created['id']}", {"config": {"format": "xml"}}, format="json")
    assert broken.status_code == 422 and broken.json()["errors"][0]["pointer"] == "/config/format"
    assert Destination.objects.get(pk=created["id"]).config["format"] == "jsonl"


def test_test_connection_records_the_result(api, tmp_path, sandbox):
    client = api("developer")
    created = client.post(URL, file_body(tmp_path), format="json").json()

    response = client.post(f"{URL}{created['id']}/test")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["result"] == "passed"
    assert body["health"]["status"] == "ok"
    assert Destination.objects.get(pk=created["id"]).last_success_at is not None
    audit = AuditEvent.objects.filter(action="destination.test").get()
    assert audit.changes["result"] == "passed"


def test_a_failed_test_says_what_to_fix(api, tmp_path):
    client = api("developer")
    created = client.post(URL, file_body(tmp_path / "missing"), format="json").json()
    body = client.post(f"{URL}{created['id']}/test").json()
    assert body["ok"] is False and "does not exist" in body["message"]
    assert body["hint"]
    detail = client.get(f"{URL}{created['id']}").json()
    assert detail["status"] == "failing" and "does not exist" in detail["last_error"]


def test_health_shows_the_breaker_and_the_queued_work(api, tmp_path):
    client = api("developer")
    created = client.post(URL, file_body(tmp_path), format="json").json()
    body = client.get(f"{URL}{created['id']}/health").json()
    assert body["breaker"]["state"] == "closed" and body["breaker"]["threshold"] == 5
    assert body["pushes"] == {"pending": 0, "deferred": 0, "failed": 0}
    assert body["status"] == "unknown" and body["explanation"]


def test_paths_answer_with_and_without_a_trailing_slash(api, tmp_path):
    client = api("developer")
    created = client.post(URL.rstrip("/"), file_body(tmp_path), format="json").json()
    assert client.get(f"{URL}{created['id']}/").status_code == 200
    assert client.get(f"{URL}{created['id']}/health/").status_code == 200


def test_every_endpoint_is_in_the_openapi_schema(api):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation_ids = {
        op["operationId"] for path in schema["paths"].values() for op in path.values() if isinstance(op, dict)
    }
    assert {
        "destinations_list",
        "destinations_create",
        "destinations_retrieve",
        "destinations_update",
        "destinations_test",
        "destinations_health",
        "jobs_retrieve",
        "status_retrieve",
    } <= operation_ids


def test_the_list_takes_a_fixed_number_of_queries(api, tmp_path, django_assert_max_num_queries):
    client = api("developer")
    for name in ("a", "b", "c"):
        assert client.post(URL, file_body(tmp_path, name), format="json").status_code == 201
    client.get(URL)  # warm the token and role lookups
    with django_assert_max_num_queries(10) as captured:
        response = client.get(URL)
    assert len(response.json()["results"]) == 3
    few = len(captured)
    for name in ("d", "e", "f"):
        client.post(URL, file_body(tmp_path, name), format="json")
    with django_assert_max_num_queries(few):
        assert len(client.get(URL).json()["results"]) == 6
