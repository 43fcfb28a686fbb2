"""The fake Cloudflare API's refusals and records (tests/infra/cf_api.py), without wrangler."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.infra.cf_api import CloudflareApi, CloudflareApiServer

pytestmark = pytest.mark.timeout(30)

BASE = "https://api.cloudflare.com/client/v4"


@pytest.fixture
def api() -> CloudflareApi:
    return CloudflareApi()


def call(api: CloudflareApi, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {kwargs.pop('token', api.token)}"}
    with api.client() as client:
        return client.request(method, f"{BASE}{path}", headers=headers, **kwargs)


def upload(
    api: CloudflareApi,
    method: str,
    script: str,
    metadata: dict[str, Any],
    *,
    versions: bool = False,
) -> httpx.Response:
    path = f"/accounts/{api.account_id}/workers/scripts/{script}" + (
        "/versions" if versions else ""
    )
    meta = {"main_module": "index.js", **metadata}
    files = {
        "metadata": (None, json.dumps(meta), "application/json"),
        "index.js": ("index.js", b"export default {}", "application/javascript+module"),
    }
    return call(api, method, path, files=files)


DO_BINDING = {"type": "durable_object_namespace", "name": "SANDBOX", "class_name": "Sandbox"}
MIGRATION = {"new_tag": "v1", "steps": [{"new_sqlite_classes": ["Sandbox"]}]}


def first_error(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return response.status_code, body["errors"][0]["code"], body["errors"][0]["message"]


def test_a_script_upload_with_its_migration_creates_the_namespace(api: CloudflareApi) -> None:
    response = upload(api, "PUT", "w", {"bindings": [DO_BINDING], "migrations": MIGRATION})
    body = response.json()
    assert response.status_code == 200 and body["success"] is True and body["errors"] == []
    assert body["result"]["migration_tag"] == "v1"
    (ns,) = api.namespaces.values()
    assert (ns["script"], ns["class"], ns["use_sqlite"]) == ("w", "Sandbox", True)
    version_id = body["result"]["deployment_id"]
    path = f"/accounts/{api.account_id}/workers/scripts/w/versions/{version_id}"
    version = call(api, "GET", path).json()["result"]
    (binding,) = version["resources"]["bindings"]
    assert binding["namespace_id"] == ns["id"]


def test_a_binding_to_a_class_no_migration_created_is_refused(api: CloudflareApi) -> None:
    status, code, message = first_error(upload(api, "PUT", "w", {"bindings": [DO_BINDING]}))
    assert (status, code) == (400, 10061) and "'Sandbox'" in message


def test_a_version_binding_an_exports_only_class_is_refused_100406(api: CloudflareApi) -> None:
    assert upload(api, "PUT", "w", {}).status_code == 200
    exports = {"Sandbox": {"type": "durable-object", "storage": "sqlite"}}
    response = upload(
        api, "POST", "w", {"bindings": [DO_BINDING], "exports": exports}, versions=True
    )
    assert first_error(response)[:2] == (400, 100406)
    assert api.namespaces == {}


def test_migrations_on_a_version_upload_are_refused_10211(api: CloudflareApi) -> None:
    assert upload(api, "PUT", "w", {}).status_code == 200
    response = upload(api, "POST", "w", {"migrations": MIGRATION}, versions=True)
    status, code, message = first_error(response)
    assert (status, code) == (400, 10211)
    assert "migrations must be fully applied via a non-versioned deployment" in message


def test_a_migration_from_the_wrong_tag_is_refused_10079(api: CloudflareApi) -> None:
    assert upload(api, "PUT", "w", {"bindings": [DO_BINDING], "migrations": MIGRATION}).is_success
    again = {"bindings": [DO_BINDING], "migrations": {**MIGRATION, "new_tag": "v2"}}
    status, code, message = first_error(upload(api, "PUT", "w", again))
    assert (status, code) == (412, 10079) and "current tag is 'v1'" in message
    recreate = {
        "bindings": [DO_BINDING],
        "migrations": {**MIGRATION, "old_tag": "v1", "new_tag": "v2"},
    }
    assert first_error(upload(api, "PUT", "w", recreate))[:2] == (400, 10074)


def test_a_permission_group_name_that_matches_nothing_is_an_empty_list(api: CloudflareApi) -> None:
    path = f"/accounts/{api.account_id}/tokens/permission_groups"
    found = call(api, "GET", path, params={"name": "Workers Scripts Write"}).json()
    assert [g["name"] for g in found["result"]] == ["Workers Scripts Write"]
    missing = call(api, "GET", path, params={"name": "Workers Script Write"})
    assert missing.status_code == 200 and missing.json()["result"] == []


def test_401_403_and_429(api: CloudflareApi) -> None:
    path = f"/accounts/{api.account_id}/workers/subdomain"
    assert first_error(call(api, "GET", path, token="nope"))[:2] == (401, 10001)
    api.revoke("workers")
    assert first_error(call(api, "GET", path))[:2] == (403, 10000)
    api.tokens[api.token].add("workers")
    api.fail("GET", r"/workers/subdomain$", 429, times=1, headers={"Retry-After": "3"}, code=971)
    limited = call(api, "GET", path)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert call(api, "GET", path).json()["result"] == {"subdomain": "alice"}


def test_an_application_must_name_the_namespace_not_the_script(api: CloudflareApi) -> None:
    body = {
        "name": "a",
        "scheduling_policy": "default",
        "instances": 0,
        "max_instances": 1,
        "configuration": {"image": "r/a@sha256:" + "1" * 64, "instance_type": "standard-1"},
        "durable_objects": {"script_name": "w", "class_name": "Sandbox"},
    }
    path = f"/accounts/{api.account_id}/containers/applications"
    status, code, message = first_error(call(api, "POST", path, json=body))
    assert (status, code) == (400, 1001) and "durable_objects must be {namespace_id}" in message


def test_records_and_state_never_show_a_secret(api: CloudflareApi) -> None:
    secret = {"type": "secret_text", "name": "TOKEN", "text": "s3cr3t-value-0123"}
    assert upload(api, "PUT", "w", {"bindings": [secret]}).status_code == 200
    (record,) = api.requests
    assert record.metadata is not None and record.metadata["bindings"] == [secret]
    assert "s3cr3t-value-0123" not in repr(record)
    assert "s3cr3t-value-0123" not in repr(api.scripts["w"])
    assert api.scripts["w"].secrets == {"TOKEN": "s3cr3t-value-0123"}
    assert api.end_state()["scripts"]["w"]["secrets"] == ["TOKEN"]


def test_the_http_server_serves_the_same_api() -> None:
    with CloudflareApiServer() as server, httpx.Client() as client:
        headers = {"Authorization": f"Bearer {server.api.token}"}
        response = client.get(
            f"{server.url}/accounts/{server.api.account_id}/workers/subdomain", headers=headers
        )
        assert response.json() == {
            "success": True,
            "errors": [],
            "messages": [],
            "result": {"subdomain": "alice"},
        }
        unknown = client.get(f"{server.url}/nothing/here", headers=headers)
        assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == 7003
    assert [r.line() for r in server.api.requests][-1] == "GET /client/v4/nothing/here -> 404"


def test_zones_by_name_through_the_sdk_and_custom_domain_records(api: CloudflareApi) -> None:
    import cloudflare

    zone_id = api.add_zone("example.com")
    c = cloudflare.Cloudflare(api_token=api.token, http_client=api.client(), max_retries=0)
    # wrangler's look-up (GET /zones?name=&account.id=) parsed by the SDK's Zone model.
    (zone,) = c.zones.list(name="example.com", account={"id": api.account_id})
    assert (zone.id, zone.name, zone.account.id) == (zone_id, "example.com", api.account_id)
    assert list(c.zones.list(name="other.example")) == []  # no match: empty, not an error
    assert list(c.workers.routes.list(zone_id=zone_id)) == []

    upload(api, "PUT", "w", {"bindings": []})
    records = f"/accounts/{api.account_id}/workers/scripts/w/domains/records"
    origins = [{"hostname": "agent.example.com", "zone_id": zone_id}]
    body = {"override_scope": True, "override_existing_origin": False, "origins": origins}
    assert call(api, "PUT", records, json=body).status_code == 200
    (domain,) = c.workers.domains.list(account_id=api.account_id, service="w")
    assert (domain.hostname, domain.zone_name) == ("agent.example.com", "example.com")

    # Another script may take the hostname only with override_existing_origin.
    upload(api, "PUT", "v", {"bindings": []})
    other = f"/accounts/{api.account_id}/workers/scripts/v/domains/records"
    assert call(api, "PUT", other, json=body).status_code == 409
    outside = {**body, "origins": [{"hostname": "agent.example.org", "zone_id": zone_id}]}
    assert call(api, "PUT", records, json=outside).status_code == 400
    unknown = {**body, "origins": [{"hostname": "agent.example.com", "zone_id": "f" * 32}]}
    assert call(api, "PUT", records, json=unknown).status_code == 404
    # override_scope: the origins sent are the script's whole set.
    assert call(api, "PUT", records, json={**body, "origins": []}).status_code == 200
    assert api.domains == {}
