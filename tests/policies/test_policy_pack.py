"""The pack as the Pulumi CLI runs it: its own process, the Analyzer gRPC protocol, the stack's
config in the environment."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policies.rules import RULES
from tests.policies.pack_process import PACK_DIR, PackProcess
from tests.policies.policy_harness import StackRun, account_policy_config, record

BUCKET = "cloudflare:index/r2Bucket:R2Bucket"


def plain_config(run: StackRun) -> dict[str, str]:
    """The stack's non-secret config: all the pack reads, and no secret in its environment."""
    return {k: v for k, v in run.config.items() if k not in run.secret_keys}


@pytest.fixture(scope="module")
def prod() -> Iterator[tuple[StackRun, PackProcess]]:
    run = record("prod")
    with PackProcess("moltworker", "prod", plain_config(run)) as pack:
        pack.configure(account_policy_config())
        yield run, pack


def test_the_pack_describes_every_rule(prod: tuple[StackRun, PackProcess]) -> None:
    _, pack = prod
    info = pack.info()
    assert info.name == "moltworker"
    assert [p.name for p in info.policies] == [rule.name for rule in RULES]
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels.pop("sleep-never-cost") == analyzer_pb2.ADVISORY
    assert set(levels.values()) == {analyzer_pb2.MANDATORY}
    schemas = {p.name: p.configSchema for p in info.policies}
    assert "aiGatewayRunPermissionGroupIds" in schemas["tokens-scoped"].properties
    assert "maxInstances" in schemas["container-bounded"].properties


def test_the_prod_example_passes_over_the_protocol(prod: tuple[StackRun, PackProcess]) -> None:
    run, pack = prod
    for res in run.resources:
        assert [d.message for d in pack.analyze(res)] == [], res.urn
    assert [d.message for d in pack.analyze_stack(run.resources)] == []


def test_an_unprotected_prod_bucket_is_refused_over_the_protocol(
    prod: tuple[StackRun, PackProcess],
) -> None:
    run, pack = prod
    bucket = run.one(BUCKET)
    bucket.protect = False
    try:
        diagnostics = pack.analyze(bucket)
    finally:
        bucket.protect = True
    assert len(diagnostics) == 1
    (diagnostic,) = diagnostics
    assert diagnostic.policyName == "data-bucket-protected"
    assert diagnostic.enforcementLevel == analyzer_pb2.MANDATORY
    # The engine attaches a resource policy's diagnostic to the resource it analysed.
    assert "is not protected" in diagnostic.message


def test_a_widened_token_is_refused_by_the_stack_policy(prod: tuple[StackRun, PackProcess]) -> None:
    run, pack = prod
    token = run.one("cloudflare:index/accountToken:AccountToken", "storage-token")
    policy = token.props["policies"][0]
    scoped = policy["resources"]
    policy["resources"] = scoped.replace(
        "com.cloudflare.edge.r2.bucket.", "com.cloudflare.api.account.zone."
    )
    try:
        diagnostics = pack.analyze_stack(run.resources)
    finally:
        policy["resources"] = scoped
    assert [d.policyName for d in diagnostics] == ["tokens-scoped"]
    assert diagnostics[0].urn == token.urn
    assert "grants zone permissions" in diagnostics[0].message


def test_a_configured_bound_reaches_the_pack(prod: tuple[StackRun, PackProcess]) -> None:
    run, pack = prod
    app = next(r for r in run.resources if "max_instances" in r.props)
    app.props["max_instances"] = 5
    try:
        assert [d.policyName for d in pack.analyze(app)] == ["container-bounded"]
        pack.configure({**account_policy_config(), "container-bounded": {"maxInstances": 5}})
        assert pack.analyze(app) == []
        app.props["max_instances"] = 6
        (diagnostic,) = pack.analyze(app)
        assert "above this pack's bound of 5" in diagnostic.message
    finally:
        app.props["max_instances"] = 1
        pack.configure(account_policy_config())


def test_build_arguments_unknown_during_preview_defer_only_the_checks_reading_them(
    prod: tuple[StackRun, PackProcess],
) -> None:
    run, pack = prod
    deploy = next(r for r in run.resources if "image_vars" in r.props)
    built = deploy.props["image_vars"]
    deploy.props["image_vars"] = UNKNOWN_STRING_VALUE  # e.g. a base image another resource makes
    try:
        diagnostics = pack.analyze(deploy)
    finally:
        deploy.props["image_vars"] = built
    assert sorted((d.policyName, d.enforcementLevel) for d in diagnostics) == [
        ("pinned-versions", analyzer_pb2.ADVISORY),
        ("secrets-in-secret-bindings", analyzer_pb2.ADVISORY),
    ]
    assert all("can't be known during preview" in d.message for d in diagnostics)


def test_the_stack_config_decides_what_is_ephemeral() -> None:
    run = record("dev")
    bucket = run.one(BUCKET)
    assert not bucket.protect  # the dev example is ephemeral
    with PackProcess("moltworker", "dev", plain_config(run)) as pack:
        assert pack.analyze(bucket) == []
    kept = {k: v for k, v in plain_config(run).items() if k != "moltworker:ephemeral"}
    with PackProcess("moltworker", "dev", kept) as pack:
        diagnostics = pack.analyze(bucket)
    assert [d.policyName for d in diagnostics] == ["data-bucket-protected"]
    assert "of stack 'dev' is not protected" in diagnostics[0].message


def test_the_pack_runs_from_a_copy_outside_the_repository(tmp_path: Path) -> None:
    # As `pulumi policy publish` and Pulumi Cloud unpack it: another directory name, no repo.
    copy = tmp_path / "moltworker-policies-0.1.0"
    shutil.copytree(PACK_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    run = record("prod")
    with PackProcess("moltworker", "prod", plain_config(run), pack_dir=copy) as pack:
        assert [p.name for p in pack.info().policies] == [rule.name for rule in RULES]
        bucket = run.one(BUCKET)
        bucket.protect = False
        assert [d.policyName for d in pack.analyze(bucket)] == ["data-bucket-protected"]
