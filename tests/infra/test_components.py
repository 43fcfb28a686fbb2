"""Each component alone under mocks: its resources, its defaults and its constructor checks."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from infra import build
from infra.access import Access, AccessArgs
from infra.ai_gateway import AiGateway, AiGatewayArgs
from infra.build import WorkerBundle
from infra.generated_secrets import GeneratedSecrets, GeneratedSecretsArgs
from infra.sandbox import SandboxArgs, SandboxContainer, sandbox_container
from infra.storage import Storage, StorageArgs
from infra.worker import (
    DEFAULT_COMPATIBILITY_DATE,
    Worker,
    WorkerArgs,
    read_jsonc,
    wrangler_compatibility,
    wrangler_migrations,
)
from tests.infra.harness import fixtures, is_secret_at, run_under_mocks, unwrap

pytestmark = pytest.mark.timeout(60)
ACCOUNT = "b" * 32


def test_storage_alone_is_not_emptied_unless_ephemeral() -> None:
    resources, _, _ = run_under_mocks(
        lambda: Storage("data", StorageArgs(account_id=ACCOUNT, bucket_name="my-bucket"))
    )
    types = sorted(r.type for r in resources)
    assert types == [
        "cloudflare:index/accountToken:AccountToken",
        "cloudflare:index/r2Bucket:R2Bucket",
        "cloudflare:index/r2BucketLifecycle:R2BucketLifecycle",
        "moltworker:storage:Storage",
    ]
    names = {r.name for r in resources}
    assert names == {"data", "data-bucket", "data-lifecycle", "data-token"}


def test_storage_protect_is_inherited_by_every_child() -> None:
    resources, _, _ = run_under_mocks(
        lambda: Storage(
            "data",
            StorageArgs(account_id=ACCOUNT, bucket_name="my-bucket"),
            opts=pulumi.ResourceOptions(protect=True),
        )
    )
    assert all(r.protect for r in resources), [r.urn for r in resources if not r.protect]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (StorageArgs(account_id=ACCOUNT, bucket_name="Bad_Name"), "R2 bucket names are 3-63"),
        (StorageArgs(account_id=ACCOUNT, bucket_name="ok-name", trash_days=0), "at least one day"),
    ],
)
def test_storage_rejects_bad_args(args: StorageArgs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_under_mocks(lambda: Storage("data", args))


def test_access_never_allows_everyone() -> None:
    with pytest.raises(ValueError, match="an allow-everyone policy is never created"):
        run_under_mocks(
            lambda: Access("a", AccessArgs(account_id=ACCOUNT, hostname="h.example.com"))
        )
    with pytest.raises(ValueError, match="must be a bare hostname"):
        run_under_mocks(
            lambda: Access(
                "a",
                AccessArgs(account_id=ACCOUNT, hostname="h.example.com/x", admin_emails=["a@b.co"]),
            )
        )


def test_access_uses_the_configured_team_domain_without_a_lookup() -> None:
    def build() -> None:
        access = Access(
            "a",
            AccessArgs(
                account_id=ACCOUNT,
                hostname="h.example.com",
                admin_emails=["a@b.co"],
                team_domain="mine.cloudflareaccess.com",
            ),
        )
        pulumi.export("team", access.team_domain)

    _, outputs, _ = run_under_mocks(build)
    assert outputs["team"] == {"value": "mine.cloudflareaccess.com", "secret": True}


def test_ai_gateway_rejects_a_broken_chain() -> None:
    for primary, fallbacks, message in [
        ("claude", [], "not in provider/model form"),
        ("anthropic/a", ["anthropic/a"], "appears twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            run_under_mocks(
                lambda p=primary, f=fallbacks: AiGateway(
                    "ai",
                    AiGatewayArgs(
                        account_id=ACCOUNT, gateway_id="g", primary_model=p, fallback_models=f
                    ),
                )
            )
    with pytest.raises(ValueError, match="the rate limit must be on"):
        run_under_mocks(
            lambda: AiGateway(
                "ai",
                AiGatewayArgs(
                    account_id=ACCOUNT, gateway_id="g", primary_model="a/b", rate_limit=0
                ),
            )
        )


def test_generated_secrets_are_stable_and_the_key_is_protected() -> None:
    def build() -> None:
        s = GeneratedSecrets("s", GeneratedSecretsArgs())
        pulumi.export("key", s.snapshot_key)
        pulumi.export("token", s.gateway_token)

    first, out1, _ = run_under_mocks(build)
    _, out2, _ = run_under_mocks(build)
    assert out1 == out2 and out1["key"]["secret"] and out1["token"]["secret"]
    protected = {r.name for r in first if r.protect}
    assert protected == {"s-snapshot-key"}
    keepers = {r.name: unwrap(r.inputs).get("keepers") for r in first if r.custom}
    assert keepers["s-gateway-token"] == {"rotate": "0"}
    with pytest.raises(ValueError, match="unknown secret"):
        run_under_mocks(
            lambda: GeneratedSecrets("s", GeneratedSecretsArgs(rotate={"snapshotKey": 1}))
        )


def _bundle() -> WorkerBundle:
    fx = fixtures()
    return build.worker_bundle(fx / "worker", prebuilt=fx / "bundle")


def _container() -> SandboxContainer:
    return sandbox_container(
        SandboxArgs(
            app_name="app", context_dir=fixtures() / "container", openclaw_version="2026.9.6"
        )
    )


def _worker_args(**extra: object) -> WorkerArgs:
    values: dict[str, object] = dict(
        account_id=ACCOUNT,
        script_name="w",
        bundle=_bundle(),
        worker_dir=fixtures() / "worker",
        assets_dir=fixtures() / "worker" / "public",
        bucket_name="b",
        hostname="w.example.com",
        container=_container(),
        api_token="t",
    )
    values.update(extra)
    return WorkerArgs(**values)  # type: ignore[arg-type]


def test_worker_refuses_local_switches_and_bad_names() -> None:
    cases = [
        ({"vars": {"MOLT_LOCAL_BACKEND": "1"}}, "local-run switches"),
        ({"vars": {"lower": "x"}}, "UPPER_SNAKE"),
        ({"vars": {"A": "x"}, "secrets": {"A": "y"}}, "both as secret and var"),
        ({"custom_domain": "w.example.com"}, "custom_domain needs zone_id"),
        ({"bundle": WorkerBundle(fixtures() / "bundle", "index.js", "0", "1")}, "main module"),
        ({"assets_dir": fixtures() / "nowhere"}, "is not a directory"),
        ({"cron": "every 5 minutes"}, "five fields"),
    ]
    for extra, message in cases:
        args = _worker_args(**extra)
        with pytest.raises(ValueError, match=message):
            run_under_mocks(lambda a=args: Worker("w", a))


def test_worker_is_one_deploy_resource_with_secret_values_kept_secret() -> None:
    resources, _, _ = run_under_mocks(
        lambda: Worker("w", _worker_args(secrets={"S": "value-of-s"}, vars={"V": "v"}))
    )
    assert {(r.type, r.name) for r in resources} == {
        ("moltworker:worker:Worker", "w"),
        ("pulumi-python:dynamic/moltworker:WorkerDeploy", "w-deploy"),
    }
    (deploy,) = [r for r in resources if r.custom]
    assert deploy.parent == next(r.urn for r in resources if not r.custom)
    assert deploy.plain["secret_names"] == ["S"] and deploy.plain["vars"] == {"V": "v"}
    assert is_secret_at(deploy.inputs, "secrets") and is_secret_at(deploy.inputs, "api_token")
    assert {"api_token", "secrets"} <= set(deploy.additional_secret_outputs)


def test_sandbox_checks_its_bounds_and_needs_a_dockerfile(tmp_path: Path) -> None:
    def args(**changes: object) -> SandboxArgs:
        values: dict[str, object] = dict(
            app_name="app", context_dir=fixtures() / "container", openclaw_version="2026.9.6"
        )
        values.update(changes)
        return SandboxArgs(**values)  # type: ignore[arg-type]

    for changes, message in [
        ({"max_instances": 0}, "must be 1..10"),
        ({"instance_type": "xl"}, "instance_type"),
        ({"openclaw_version": "latest"}, "an exact version"),
        ({"context_dir": tmp_path}, "no Dockerfile"),
        ({"build_args": {"OPENCLAW_VERSION": "1.2.3"}}, "comes from openclaw_version"),
        ({"app_name": "Bad_Name"}, "a-z, 0-9"),
    ]:
        with pytest.raises(Exception, match=message):
            sandbox_container(args(**changes))
    plain = sandbox_container(args())
    based = sandbox_container(args(build_args={"BASE_IMAGE": "localhost/base:1"}))
    assert plain.image_vars == {"OPENCLAW_VERSION": "2026.9.6"}
    assert based.image_vars == {"OPENCLAW_VERSION": "2026.9.6", "BASE_IMAGE": "localhost/base:1"}
    assert plain.image_fingerprint != based.image_fingerprint  # a build argument is an input
    assert plain.dockerfile.endswith("container/Dockerfile")


def test_migrations_come_from_wrangler_jsonc(tmp_path: Path) -> None:
    assert wrangler_migrations(fixtures() / "worker", "Sandbox") == [
        {"tag": "v1", "new_sqlite_classes": ["Sandbox"]}
    ]
    (tmp_path / "wrangler.jsonc").write_text(
        '{"migrations": [{"tag": "v1", "new_classes": ["Sandbox"]}]}'
    )
    with pytest.raises(ValueError, match="SQLite class"):
        wrangler_migrations(tmp_path, "Sandbox")
    (tmp_path / "wrangler.jsonc").write_text("{}")
    with pytest.raises(ValueError, match="no `migrations` list"):
        wrangler_migrations(tmp_path, "Sandbox")


def test_jsonc_reader_keeps_strings_and_drops_comments(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonc"
    path.write_text(
        '{\n  // a comment\n  "url": "https://x.example/a//b", /* block */\n'
        '  "s": "quote \\" // not a comment",\n  "list": [1, 2,],\n}\n'
    )
    assert read_jsonc(path) == {
        "url": "https://x.example/a//b",
        "s": 'quote " // not a comment',
        "list": [1, 2],
    }
    real = read_jsonc(build.ROOT / "worker" / "wrangler.jsonc")
    assert real["migrations"][0]["new_sqlite_classes"] == ["Sandbox"]


def test_compatibility_comes_from_wrangler_jsonc(tmp_path: Path) -> None:
    assert wrangler_compatibility(tmp_path) == (DEFAULT_COMPATIBILITY_DATE, ["nodejs_compat"])
    (tmp_path / "wrangler.jsonc").write_text('{\n  // c\n  "compatibility_date": "2026-08-15"\n}')
    assert wrangler_compatibility(tmp_path) == ("2026-08-15", [])
    (tmp_path / "wrangler.jsonc").write_text(
        '{"compatibility_date": "2026-08-15", "compatibility_flags": ["nodejs_compat"]}'
    )
    assert wrangler_compatibility(tmp_path) == ("2026-08-15", ["nodejs_compat"])
