from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from ops_fakes import Cli, MemoryStack
from ops_worker_imitation import TEAM, Behaviour, audit, serve

GATEWAY_TOKEN = "gw-token-do-not-print-0f9e8d7c"


def outputs_file(tmp_path: Path, url: str, b: Behaviour, **extra: object) -> Path:
    values: dict[str, object] = {
        "workerUrl": url,
        "accessTeamDomain": TEAM,
        "accessClientId": b.client_id,
        "accessClientSecret": b.client_secret,
        "gatewayToken": GATEWAY_TOKEN,
        **extra,
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({k: v for k, v in values.items() if v is not None}))
    return path


def assert_no_secrets(text: str, b: Behaviour) -> None:
    for secret in (b.client_secret, b.client_id, b.cdp_secret, GATEWAY_TOKEN):
        assert secret not in text


def smoke(cli: Cli, path: Path, *extra: str):
    return cli(
        "smoke",
        "--stack",
        "dev",
        "--outputs-file",
        str(path),
        "--wait",
        "0.3",
        "--poll-interval",
        "0.05",
        *extra,
    )


@pytest.mark.parametrize("refusal", ["redirect", "401", "403"])
def test_healthy_stack_passes_every_check(cli: Cli, tmp_path: Path, refusal: str) -> None:
    b = Behaviour(refusal=refusal)
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 0, run.text
    assert "smoke: 7 checks, 0 failed" in run.out
    assert "gateway running, last snapshot 42s old, nothing unsaved" in run.out
    # The refusals were checked without credentials, the status with the service token.
    admin_calls = [h for p, h in b.seen if p.startswith(("/_admin", "/api/admin", "/debug"))]
    assert [("CF-Access-Client-Secret" in h) for h in admin_calls] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert "ok   security audit: no critical findings, 1 warning(s)" in run.out
    assert_no_secrets(run.text, b)


def test_public_admin_path_fails_loudly(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(refusal="public")
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert "FAIL /_admin/ without Access" in run.out
    assert "PUBLIC" in run.out
    assert "smoke: 7 checks, 3 failed" in run.out
    assert_no_secrets(run.text, b)


def test_redirect_to_another_domain_is_not_access(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(refusal="wrong-redirect")
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert "redirected to 'evil.example.com'" in run.out


def test_open_cdp_route_fails(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(cdp_open=True)
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert "FAIL /cdp without secret" in run.out


def test_waits_for_a_waking_container(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(phases=["starting", "ready"], booting_calls=2)
    with serve(b) as url:
        run = cli(
            "smoke",
            "--stack",
            "dev",
            "--outputs-file",
            str(outputs_file(tmp_path, url, b)),
            "--wait",
            "5",
            "--poll-interval",
            "0.05",
        )
    assert run.code == 0, run.text
    assert sum(1 for p, _ in b.seen if p == "/api/admin/status") >= 4


def test_gateway_not_ready_fails_after_wait(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(phases=["degraded"])
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert "phase='degraded'" in run.out


def test_a_sandbox_that_never_boots_fails_after_wait(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(booting_calls=10_000)
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert "admin status after 0s: phase='restoring'" in run.out


@pytest.mark.parametrize(
    ("age", "pending", "message"),
    [
        (None, False, "no snapshot yet"),
        (90_000.0, True, "changes unsaved for a snapshot 90000s old"),
    ],
)
def test_missing_or_failing_snapshots_fail(
    cli: Cli, tmp_path: Path, age: float | None, pending: bool, message: str
) -> None:
    b = Behaviour(snapshot_age_s=age, snapshot_pending=pending)
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert message in run.out


def test_an_idle_agent_with_an_old_snapshot_is_fine(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(snapshot_age_s=900_000.0, snapshot_pending=False)
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 0, run.text
    assert "last snapshot 900000s old, nothing unsaved" in run.out


def test_refused_service_token_names_the_cause(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour()
    with serve(b) as url:
        stale = Behaviour(client_secret="an-old-revoked-secret-123")
        run = smoke(cli, outputs_file(tmp_path, url, stale))
    assert run.code == 1
    assert "refused the service token (302)" in run.out
    assert "an-old-revoked-secret-123" not in run.text


def test_service_token_from_environment(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour()
    cli.deps.env = {"CF_ACCESS_CLIENT_ID": b.client_id, "CF_ACCESS_CLIENT_SECRET": b.client_secret}
    with serve(b) as url:
        path = outputs_file(tmp_path, url, b, accessClientId=None, accessClientSecret=None)
        run = smoke(cli, path)
    assert run.code == 0, run.text
    assert_no_secrets(run.text, b)


def test_without_service_token_the_status_check_explains(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour()
    with serve(b) as url:
        path = outputs_file(tmp_path, url, b, accessClientId=None, accessClientSecret=None)
        run = smoke(cli, path)
        skipped = smoke(cli, path, "--no-status")
    assert run.code == 1
    assert "accessServiceToken true" in run.out
    assert skipped.code == 0
    assert "smoke: 5 checks, 0 failed" in skipped.out


def test_unreachable_endpoint(cli: Cli, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    b = Behaviour()
    run = smoke(cli, outputs_file(tmp_path, f"http://127.0.0.1:{port}", b), "--timeout", "2")
    assert run.code == 1
    assert f"cannot reach http://127.0.0.1:{port}/healthz (ConnectError)" in run.out
    assert_no_secrets(run.text, b)


def test_missing_output_is_named(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"accessClientSecret": "a-secret-that-must-stay-hidden"}))
    run = smoke(cli, path)
    assert run.code == 1
    assert "stack output 'workerUrl' is missing" in run.err
    assert "pulumi up --stack dev" in run.err


def test_outputs_read_through_pulumi_seam(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour()
    with serve(b) as url:
        cli.pulumi.stacks["staging"] = MemoryStack(
            outputs=json.loads(outputs_file(tmp_path, url, b).read_text())
        )
        run = cli("smoke", "--stack", "staging", "--wait", "0.5")
        missing = cli("smoke", "--stack", "nope", "--wait", "0.5")
    assert run.code == 0, run.text
    assert ("outputs", "staging") in cli.pulumi.calls
    assert missing.code == 1
    assert "no stack named 'nope'" in missing.err


def test_a_critical_audit_finding_fails_with_its_fix(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(audits=[audit("done", "critical", "warn")])
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert "FAIL security audit: OpenClaw's security audit reports 1 critical finding(s)" in run.out
    assert "A critical finding [example.critical_0]: fix: How to fix 0." in run.out
    assert "smoke: 7 checks, 1 failed" in run.out


def test_an_audit_still_running_is_waited_for(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(audits=[audit("pending"), audit("running"), audit("done", "warn")])
    with serve(b) as url:
        run = cli(
            "smoke",
            "--stack",
            "dev",
            "--outputs-file",
            str(outputs_file(tmp_path, url, b)),
            "--wait",
            "5",
            "--poll-interval",
            "0.05",
        )
    assert run.code == 0, run.text
    assert "ok   security audit: no critical findings, 1 warning(s)" in run.out


def test_an_audit_that_never_finishes_fails_after_wait(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(audits=[audit("running")])
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert "FAIL security audit: after 0s: OpenClaw's security audit has not finished" in run.out


def test_a_failed_audit_passes_with_a_note(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(audits=[audit("failed", "warn")])
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 0, run.text
    assert "the last audit did not complete" in run.out


def test_a_runtime_without_the_audit_fails(cli: Cli, tmp_path: Path) -> None:
    b = Behaviour(audits=[None])
    with serve(b) as url:
        run = smoke(cli, outputs_file(tmp_path, url, b))
    assert run.code == 1
    assert "the runtime reports no security audit" in run.out
