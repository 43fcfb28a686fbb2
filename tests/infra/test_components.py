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
from infra.sandbox import Sandbox, SandboxArgs
from infra.storage import Storage, StorageArgs
from infra.worker import DEFAULT_COMPATIBILITY_DATE, Worker, WorkerArgs, wrangler_compatibility
from tests.infra.harness import fixtures, run_under_mocks, unwrap

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


def test_worker_refuses_local_switches_and_bad_names() -> None:
    base = dict(
        account_id=ACCOUNT,
        script_name="w",
        bundle=_bundle(),
        assets_dir=fixtures() / "worker" / "public",
        bucket_name="b",
        hostname="w.example.com",
    )
    cases = [
        ({"vars": {"MOLT_LOCAL_BACKEND": "1"}}, "local-run switches"),
        ({"vars": {"lower": "x"}}, "UPPER_SNAKE"),
        ({"vars": {"A": "x"}, "secrets": {"A": "y"}}, "both as secret and var"),
        ({"custom_domain": "w.example.com"}, "custom_domain needs zone_id"),
        ({"bundle": WorkerBundle(fixtures() / "bundle", "index.js", "0", "1")}, "main module"),
        ({"assets_dir": fixtures() / "nowhere"}, "is not a directory"),
    ]
    for extra, message in cases:
        args = WorkerArgs(**{**base, **extra})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=message):
            run_under_mocks(lambda a=args: Worker("w", a))


def test_sandbox_checks_its_bounds_and_needs_a_dockerfile(tmp_path: Path) -> None:
    def args(**changes: object) -> SandboxArgs:
        values: dict[str, object] = dict(
            account_id=ACCOUNT,
            app_name="app",
            context_dir=fixtures() / "container",
            openclaw_version="2026.9.6",
            script_name="w",
            api_token="t",
        )
        values.update(changes)
        return SandboxArgs(**values)  # type: ignore[arg-type]

    for changes, message in [
        ({"max_instances": 0}, "must be 1..10"),
        ({"instance_type": "xl"}, "instance_type"),
        ({"openclaw_version": "latest"}, "an exact version"),
        ({"context_dir": tmp_path}, "no Dockerfile"),
    ]:
        bad = args(**changes)
        with pytest.raises(Exception, match=message):
            run_under_mocks(lambda a=bad: Sandbox("s", a))
    resources, _, _ = run_under_mocks(lambda: Sandbox("s", args()))
    assert {r.name for r in resources} == {"s", "s-registry-credentials", "s-image", "s-app"}


def test_compatibility_comes_from_wrangler_jsonc(tmp_path: Path) -> None:
    assert wrangler_compatibility(tmp_path) == (DEFAULT_COMPATIBILITY_DATE, ["nodejs_compat"])
    (tmp_path / "wrangler.jsonc").write_text('{\n  // c\n  "compatibility_date": "2026-08-15"\n}')
    assert wrangler_compatibility(tmp_path) == ("2026-08-15", [])
    (tmp_path / "wrangler.jsonc").write_text(
        '{"compatibility_date": "2026-08-15", "compatibility_flags": ["nodejs_compat"]}'
    )
    assert wrangler_compatibility(tmp_path) == ("2026-08-15", ["nodejs_compat"])
