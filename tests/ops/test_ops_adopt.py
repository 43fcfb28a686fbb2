"""`ops adopt`: a stack made by the old deploy path, upgraded by state surgery alone.

The state is a fake `pulumi stack export` of what the old program left (its Worker component
with the old script, version and deployment resources, the Sandbox component with its
container application, image and registry credentials, and the resources the new program
keeps); MemoryPulumi's `state delete` refuses what the CLI refuses. The provider side (the
create that refuses a live Worker until the stack adopts it) is in
tests/infra/test_dynamic_providers.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from ops_fakes import Cli, MemoryPulumi, MemoryStack

from ops.adopt import ADOPT_KEY, LEGACY_TYPES

pytestmark = pytest.mark.timeout(30)

P = "urn:pulumi:dev::moltworker::"
WORKER = f"{P}moltworker:worker:Worker::worker"
SANDBOX = f"{P}moltworker:sandbox:Sandbox::sandbox"
BUCKET = f"{P}cloudflare:index/r2Bucket:R2Bucket::storage-bucket"
CF_PROVIDER = f"{P}pulumi:providers:cloudflare::default"
DB_PROVIDER = f"{P}pulumi:providers:docker-build::default"


def old_state() -> list[dict[str, Any]]:
    def res(urn: str, type_: str, **extra: Any) -> dict[str, Any]:
        return {"urn": urn, "type": type_, "custom": True, **extra}

    script = f"{P}moltworker:worker:Worker$cloudflare:index/worker:Worker::worker-script"
    version = f"{P}moltworker:worker:Worker$cloudflare:index/workerVersion:WorkerVersion::w-v"
    image = f"{P}moltworker:sandbox:Sandbox$docker-build:index:Image::sandbox-image"
    app = (
        f"{P}moltworker:sandbox:Sandbox$pulumi-python:dynamic/moltworker:ContainerApp::sandbox-app"
    )
    return [
        res(CF_PROVIDER, "pulumi:providers:cloudflare"),
        res(DB_PROVIDER, "pulumi:providers:docker-build"),
        res(BUCKET, "cloudflare:index/r2Bucket:R2Bucket", protect=True),
        {"urn": WORKER, "type": "moltworker:worker:Worker", "custom": False},
        {"urn": SANDBOX, "type": "moltworker:sandbox:Sandbox", "custom": False},
        res(image, "docker-build:index:Image", parent=SANDBOX, provider=f"{DB_PROVIDER}::p1"),
        res(
            app,
            "pulumi-python:dynamic/moltworker:ContainerApp",
            parent=SANDBOX,
            dependencies=[image],
        ),
        res(
            script,
            "cloudflare:index/worker:Worker",
            parent=WORKER,
            protect=True,
            dependencies=[BUCKET],
            provider=f"{CF_PROVIDER}::p2",
        ),
        res(
            version,
            "cloudflare:index/workerVersion:WorkerVersion",
            parent=WORKER,
            dependencies=[script, app],
        ),
    ]


@pytest.fixture
def stack(pulumi: MemoryPulumi) -> MemoryStack:
    pulumi.stacks["dev"] = MemoryStack(config={}, resources=old_state())
    return pulumi.stacks["dev"]


def test_without_yes_it_lists_the_old_resources_and_changes_nothing(
    cli: Cli, pulumi: MemoryPulumi, stack: MemoryStack
) -> None:
    run = cli("adopt", "--stack", "dev")
    assert run.code == 1 and "re-run with --yes" in run.text
    assert "worker-script  [protected]" in run.text and "sandbox-app" in run.text
    assert BUCKET not in run.text
    assert [c[0] for c in pulumi.calls] == ["stack_export"]
    assert len(stack.resources) == len(old_state()) and stack.config == {}


def test_yes_forgets_the_old_resources_keeps_the_rest_and_records_the_adoption(
    cli: Cli, pulumi: MemoryPulumi, stack: MemoryStack
) -> None:
    run = cli("adopt", "--stack", "dev", "--yes")
    assert run.code == 0, run.text
    left = {r["urn"] for r in stack.resources}
    assert left == {CF_PROVIDER, BUCKET, WORKER}  # the data and the new program's parts stay
    assert not [r for r in stack.resources if r["type"] in LEGACY_TYPES]
    assert stack.config == {ADOPT_KEY: "true"}
    deletes = [c for c in pulumi.calls if c[0] == "state_delete"]
    assert len(deletes) == 6
    # State surgery only: never an up, a destroy or anything that reaches the account.
    assert {c[0] for c in pulumi.calls} == {"stack_export", "state_delete", "config_set"}
    # The protected old script needed --force to leave the state; nothing else did.
    forced = [c[2] for c in deletes if c[-1] == "--force"]
    assert len(forced) == 1 and forced[0].endswith("::worker-script")
    assert "pulumi up --stack dev" in run.text and f"pulumi config rm {ADOPT_KEY}" in run.text

    # Nothing of the old path left: only the adoption (for a Worker that a first `up` which
    # failed part-way left behind), and only with --yes.
    stack.config.clear()
    asked = cli("adopt", "--stack", "dev")
    assert asked.code == 1 and "failed part-way" in asked.text and stack.config == {}
    again = cli("adopt", "--stack", "dev", "--yes")
    assert again.code == 0 and "Removed 0 resource(s)" in again.text
    assert stack.config == {ADOPT_KEY: "true"}


def test_a_kept_resource_that_points_at_an_old_one_stops_it_before_any_change(
    cli: Cli, pulumi: MemoryPulumi, stack: MemoryStack
) -> None:
    script = next(r["urn"] for r in stack.resources if r["urn"].endswith("::worker-script"))
    access = f"{P}cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication::app"
    stack.resources.append({"urn": access, "type": "x", "custom": True, "dependencies": [script]})
    run = cli("adopt", "--stack", "dev", "--yes")
    assert run.code == 1 and access in run.text and "nothing changed" in run.text
    assert [c[0] for c in pulumi.calls] == ["stack_export"]


def test_a_bad_stack_name_is_refused(cli: Cli, pulumi: MemoryPulumi) -> None:
    run = cli("adopt", "--stack", "dev; rm -rf /", "--yes")
    assert run.code == 1 and "is not valid" in run.text and pulumi.calls == []
