"""Dynamic providers against the simulated Cloudflare API (paths, bodies, failures)."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime import rpc

from infra.dynamic import cf
from infra.dynamic.container_app import ContainerAppProvider
from infra.dynamic.registry_credentials import RegistryCredentialsProvider
from tests.infra.cf_sim import CloudflareSim

pytestmark = pytest.mark.timeout(30)

IMAGE = "registry.cloudflare.com/acct/moltworker-dev:2026.9.6-abc@sha256:" + "1" * 64
IMAGE2 = "registry.cloudflare.com/acct/moltworker-dev:2026.9.6-def@sha256:" + "2" * 64


@pytest.fixture
def sim() -> CloudflareSim:
    return CloudflareSim()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The SDK's retry back-off, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr("cloudflare._base_client.time.sleep", slept.append)
    return slept


def app_props(sim: CloudflareSim, **changes: Any) -> dict[str, Any]:
    props = {
        "account_id": sim.account_id,
        "name": "moltworker-dev",
        "script_name": "moltworker-dev",
        "class_name": "Sandbox",
        "image": IMAGE,
        "instance_type": "standard-1",
        "max_instances": 1.0,  # numbers arrive from the engine as floats
        "api_token": sim.token,
        "application_id": None,
        "namespace_id": None,
    }
    props.update(changes)
    return props


def provider(sim: CloudflareSim) -> ContainerAppProvider:
    return ContainerAppProvider(http_client_factory=sim.client)


def test_create_sends_a_do_bound_application(sim: CloudflareSim) -> None:
    result = provider(sim).create(app_props(sim))
    (call,) = sim.calls("POST", r"/containers/applications$")
    assert call.path == f"/client/v4/accounts/{sim.account_id}/containers/applications"
    assert call.body == {
        "name": "moltworker-dev",
        "scheduling_policy": "default",
        "instances": 0,
        "max_instances": 1,
        "configuration": {
            "image": IMAGE,
            "instance_type": "standard-1",
            "observability": {"logs": {"enabled": True}},
        },
        "durable_objects": {"class_name": "Sandbox", "script_name": "moltworker-dev"},
    }
    assert result.id == "app-0001"
    assert result.outs is not None
    assert result.outs["application_id"] == "app-0001"
    assert result.outs["namespace_id"] == "ns-moltworker-dev-Sandbox"


def test_read_returns_live_state_and_empty_id_when_gone(sim: CloudflareSim) -> None:
    p = provider(sim)
    created = p.create(app_props(sim))
    assert created.outs is not None
    sim.apps[created.id]["max_instances"] = 3  # changed outside Pulumi
    read = p.read(created.id, created.outs)
    assert read.id == created.id and read.outs is not None and read.outs["max_instances"] == 3
    del sim.apps[created.id]
    gone = p.read(created.id, created.outs)
    assert gone.id == "" and gone.outs == {}  # Pulumi then plans a re-create


def test_diff_replaces_on_identity_and_updates_in_place_otherwise(sim: CloudflareSim) -> None:
    p = provider(sim)
    olds = app_props(sim)
    assert p.diff("app", olds, dict(olds)).changes is False
    renamed = p.diff("app", olds, app_props(sim, script_name="other"))
    assert renamed.changes and renamed.replaces == ["script_name"]
    assert renamed.delete_before_replace is True
    rolled = p.diff("app", olds, app_props(sim, image=IMAGE2))
    assert rolled.changes and rolled.replaces == []
    token_only = p.diff("app", olds, app_props(sim, api_token="new-token"))
    assert token_only.changes and token_only.replaces == []


def test_update_rolls_out_a_new_image_and_resizes(sim: CloudflareSim) -> None:
    p = provider(sim)
    created = p.create(app_props(sim))
    assert created.outs is not None
    news = app_props(sim, image=IMAGE2, instance_type="standard-2", max_instances=2.0)
    outs = p.update(created.id, created.outs, news).outs
    (rollout,) = sim.calls("POST", r"/rollouts$")
    assert rollout.path.endswith(f"/containers/applications/{created.id}/rollouts")
    assert rollout.body["strategy"] == "rolling" and rollout.body["kind"] == "full_auto"
    assert rollout.body["step_percentage"] == 100
    assert rollout.body["target_configuration"]["image"] == IMAGE2
    assert rollout.body["target_configuration"]["instance_type"] == "standard-2"
    (edit,) = sim.calls("PATCH", r"/containers/applications/")
    assert edit.body == {"max_instances": 2}
    assert sim.apps[created.id]["configuration"]["image"] == IMAGE2
    assert outs is not None and outs["namespace_id"] == "ns-moltworker-dev-Sandbox"


def test_update_with_only_a_new_token_calls_nothing(sim: CloudflareSim) -> None:
    p = provider(sim)
    created = p.create(app_props(sim))
    assert created.outs is not None
    before = len(sim.requests)
    sim.token = "rotated-token"
    p.update(created.id, created.outs, app_props(sim))
    assert len(sim.requests) == before


def test_delete_removes_and_tolerates_already_gone(sim: CloudflareSim) -> None:
    p = provider(sim)
    created = p.create(app_props(sim))
    p.delete(created.id, app_props(sim))
    assert sim.apps == {}
    p.delete(created.id, app_props(sim))  # second delete: 404, treated as done
    assert len(sim.calls("DELETE", r"/containers/applications/")) == 2


def test_check_refuses_unpinned_images_and_unbounded_instances(sim: CloudflareSim) -> None:
    result = provider(sim).check(
        {}, app_props(sim, image="registry.cloudflare.com/a/b:latest", max_instances=50)
    )
    assert {f.property for f in result.failures} == {"image", "max_instances"}
    assert provider(sim).check({}, app_props(sim)).failures == []


def test_401_says_the_token_is_wrong_without_showing_it(sim: CloudflareSim) -> None:
    with pytest.raises(cf.CloudflareApiError) as err:
        provider(sim).create(app_props(sim, api_token="wrong-token-value"))
    assert err.value.status == 401
    assert "the API token was rejected" in str(err.value)
    assert "pulumi config set --secret cloudflare:apiToken" in str(err.value)
    assert "wrong-token-value" not in str(err.value)


def test_403_names_the_missing_permission(sim: CloudflareSim) -> None:
    sim.token_permissions.discard("containers")
    with pytest.raises(cf.CloudflareApiError) as err:
        provider(sim).create(app_props(sim))
    assert err.value.status == 403
    assert "lacks the 'Containers Write' permission" in str(err.value)
    assert "Authentication error (code 10000)" in str(err.value)


def test_409_explains_the_conflict(sim: CloudflareSim, sleeps: list[float]) -> None:
    provider(sim).create(app_props(sim))
    with pytest.raises(cf.CloudflareApiError) as err:
        provider(sim).create(app_props(sim))
    assert err.value.status == 409
    assert "already exists" in str(err.value) and "import it or delete it" in str(err.value)


def test_429_is_retried_honouring_retry_after(sim: CloudflareSim, sleeps: list[float]) -> None:
    sim.fail("POST", r"/containers/applications$", 429, times=2, headers={"Retry-After": "7"})
    result = provider(sim).create(app_props(sim))
    assert result.id == "app-0001"
    assert sleeps == [7.0, 7.0]
    assert len(sim.calls("POST", r"/containers/applications$")) == 3


def test_persistent_429_gives_up_with_advice(sim: CloudflareSim, sleeps: list[float]) -> None:
    sim.fail("GET", r"/containers/applications/", 429, times=99, headers={"Retry-After": "1"})
    with pytest.raises(cf.CloudflareApiError) as err:
        provider(sim).read("app-0001", app_props(sim))
    assert err.value.status == 429 and "still rate limited" in str(err.value)
    assert len(sleeps) == cf.MAX_RETRIES


def test_5xx_is_retried_then_explained(sim: CloudflareSim, sleeps: list[float]) -> None:
    sim.fail("DELETE", r"/containers/applications/", 503, times=1)
    created = provider(sim).create(app_props(sim))
    provider(sim).delete(created.id, app_props(sim))  # one 503, then success
    assert sim.apps == {} and len(sleeps) == 1
    sim.fail("POST", r"/rollouts$", 500, times=99)
    created = provider(sim).create(app_props(sim))
    assert created.outs is not None
    with pytest.raises(cf.CloudflareApiError) as err:
        provider(sim).update(created.id, created.outs, app_props(sim, image=IMAGE2))
    assert err.value.status == 500 and "cloudflarestatus.com" in str(err.value)


def cred_props(sim: CloudflareSim, **changes: Any) -> dict[str, Any]:
    props = {
        "account_id": sim.account_id,
        "fingerprint": "f" * 64,
        "expiration_minutes": 60,
        "api_token": sim.token,
        "username": None,
        "password": None,
        "registry_host": None,
    }
    props.update(changes)
    return props


def test_registry_credentials_are_minted_for_push(sim: CloudflareSim) -> None:
    p = RegistryCredentialsProvider(http_client_factory=sim.client)
    result = p.create(cred_props(sim))
    (call,) = sim.calls("POST", r"/credentials$")
    assert call.path == (
        f"/client/v4/accounts/{sim.account_id}/containers/registries/registry.cloudflare.com/credentials"
    )
    assert call.body == {"expiration_minutes": 60, "permissions": ["push", "pull"]}
    assert result.outs is not None
    assert result.outs["password"] == "sim-registry-password-1"
    assert result.outs["username"] == "v1"


def test_registry_credentials_change_only_with_the_build(sim: CloudflareSim) -> None:
    p = RegistryCredentialsProvider(http_client_factory=sim.client)
    created = p.create(cred_props(sim))
    assert created.outs is not None
    same = p.diff(created.id, created.outs, cred_props(sim))
    assert same.changes is False  # an unchanged build context: nothing to do, no new secret
    rebuilt = p.diff(created.id, created.outs, cred_props(sim, fingerprint="e" * 64))
    assert rebuilt.changes and rebuilt.replaces == ["fingerprint"]
    rotated = p.diff(created.id, created.outs, cred_props(sim, api_token="new"))
    assert rotated.changes and rotated.replaces == []
    kept = p.update(created.id, created.outs, cred_props(sim, api_token="new")).outs
    assert kept is not None and kept["password"] == created.outs["password"]
    assert sim.credentials_minted == 1
    assert p.read(created.id, created.outs).outs == created.outs


def test_registry_credentials_403(sim: CloudflareSim) -> None:
    sim.token_permissions.discard("containers")
    p = RegistryCredentialsProvider(http_client_factory=sim.client)
    with pytest.raises(cf.CloudflareApiError, match="lacks the 'Containers Write' permission"):
        p.create(cred_props(sim))


def test_check_accepts_values_unknown_during_preview(sim: CloudflareSim) -> None:
    unknown = rpc.UNKNOWN  # what the engine sends for an image not built yet
    result = provider(sim).check({}, app_props(sim, image=unknown, max_instances=unknown))
    assert result.failures == []
    assert provider(sim).diff("app", app_props(sim), app_props(sim, image=unknown)).changes


def test_unusable_api_answers_are_refused(sim: CloudflareSim) -> None:
    original = sim._credentials

    def empty_password(body: Any, account: str, domain: str) -> Any:
        response = original(body, account, domain)
        data = response.json()
        data["result"]["password"] = ""
        return type(response)(200, json=data)

    sim._credentials = empty_password  # type: ignore[method-assign]
    p = RegistryCredentialsProvider(http_client_factory=sim.client)
    with pytest.raises(cf.CloudflareApiError, match="without usable credentials"):
        p.create(cred_props(sim))
