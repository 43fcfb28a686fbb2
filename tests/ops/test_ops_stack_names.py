"""Stacks never collide: every physical name the program creates differs between dev, staging,
prod and a review stack, and only the review/dev stacks are throw-away.

Runs the whole program under the infra harness's mocks. The review stack's config is what
`python -m ops review create --pr 1` produces: staging's file plus `ephemeral: true` and the
Access service token.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from ops_fakes import current_event_loop

from ops import outputs
from tests.infra import harness

pytestmark = pytest.mark.timeout(240)

STACKS = ("dev", "staging", "prod", "pr-1")


def _review_config(original: Callable[[str], dict[str, str]]) -> Callable[[str], dict[str, str]]:
    def stack_config(stack: str) -> dict[str, str]:
        if stack.startswith("pr-"):
            config = original("staging")
            config["moltworker:ephemeral"] = "true"
            config["moltworker:accessServiceToken"] = "true"
            return config
        return original(stack)

    return stack_config


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    original = harness.stack_config
    harness.stack_config = _review_config(original)
    # Pulumi's mocks use the thread's current event loop; an earlier asyncio.run() may have left
    # none set. Use a private one and put back whatever was there.
    previous = current_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return {stack: harness.run_program_full(stack) for stack in STACKS}
    finally:
        harness.stack_config = original
        asyncio.set_event_loop(previous)
        loop.close()


def physical_names(run: Any) -> dict[str, list[str]]:
    def names(type_: str, key: str) -> list[str]:
        return sorted(r.plain[key] for r in run.by_type(type_))

    deploys = run.dynamic("worker-deploy")
    return {
        "bucket": names("cloudflare:index/r2Bucket:R2Bucket", "name"),
        "worker": sorted(r.plain["script_name"] for r in deploys),
        "ai gateway": names("cloudflare:index/aiGateway:AiGateway", "aiGatewayId"),
        "access app": names(
            "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication", "name"
        ),
        "tokens": names("cloudflare:index/accountToken:AccountToken", "name"),
        # The application's name is also the image repository wrangler pushes to.
        "container app": sorted(r.plain["app_name"] for r in deploys),
    }


def test_physical_names_are_distinct_per_stack(runs: dict[str, Any]) -> None:
    by_stack = {stack: physical_names(run) for stack, run in runs.items()}
    for kind in by_stack["dev"]:
        seen: dict[str, str] = {}
        for stack, names in by_stack.items():
            assert names[kind], f"{stack} creates no {kind}"
            for name in names[kind]:
                assert name not in seen, f"{kind} {name!r} is used by {seen.get(name)} and {stack}"
                seen[name] = stack
    for stack in ("dev", "staging", "pr-1"):
        assert by_stack[stack]["bucket"] == [f"moltworker-{stack}-data"]
        assert by_stack[stack]["worker"] == [f"moltworker-{stack}"]


def test_only_throw_away_stacks_can_lose_their_bucket(runs: dict[str, Any]) -> None:
    bucket = "cloudflare:index/r2Bucket:R2Bucket"
    for stack in ("staging", "prod"):
        run = runs[stack]
        assert run.one(bucket).protect, f"{stack}: the data bucket must be protected"
        assert not run.dynamic("bucket-emptier"), f"{stack}: nothing may empty its bucket"
    for stack in ("dev", "pr-1"):
        run = runs[stack]
        assert not run.one(bucket).protect
        # Destroying a review stack empties the bucket first, so destroy cannot fail on it.
        assert len(run.dynamic("bucket-emptier")) == 1


def test_the_program_exports_what_ops_reads(runs: dict[str, Any]) -> None:
    read = {
        outputs.URL,
        outputs.ACCESS_TEAM_DOMAIN,
        outputs.R2_ENDPOINT,
        outputs.R2_BUCKET,
        outputs.SNAPSHOT_KEEP,
        outputs.EPHEMERAL,
        *outputs.SECRET_OUTPUTS,
    }
    # The service token exists only where the stack asks for one (not in the prod example).
    optional = {outputs.SERVICE_TOKEN_ID, outputs.SERVICE_TOKEN_SECRET}
    for stack, run in runs.items():
        exported = run.outputs
        needed = read - optional if stack == "prod" else read
        missing = needed - set(exported)
        assert not missing, f"{stack}: ops reads outputs the program does not export: {missing}"
        for name in set(outputs.SECRET_OUTPUTS) & set(exported):
            assert exported[name]["secret"], f"{stack}: output {name} must be a secret"
        assert exported[outputs.EPHEMERAL]["value"] is (stack in ("dev", "pr-1"))
        assert exported[outputs.R2_BUCKET]["value"] == f"moltworker-{stack}-data"
        assert str(exported[outputs.R2_ENDPOINT]["value"]).startswith("https://")
