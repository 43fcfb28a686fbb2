"""`state-bucket create` against a simulated Cloudflare API, `state-bucket check` against a local
S3-compatible server: the Pulumi DIY backend path with the derived, bucket-scoped credentials."""

from __future__ import annotations

import hashlib
import json
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import boto3.session
import cloudflare
import httpx
import pytest
from botocore.config import Config as BotoConfig
from ops_fakes import Cli
from ops_s3_refusal import refusing_s3

from ops.state_backend import parse_login_url
from tests.infra.cf_api import CloudflareApi

pytestmark = pytest.mark.s3

ACCOUNT = "c" * 32
WRITE = "Workers R2 Storage Bucket Item Write"


# Near-miss names make sure the command picks the group by its exact name.
GROUPS = [WRITE.replace("Write", "Read"), f"{WRITE} (legacy)", WRITE, "Workers Scripts Write"]
WRITE_ID = hashlib.sha256(WRITE.encode()).hexdigest()[:32]  # the fake's group ids


@pytest.fixture
def sim(cli: Cli) -> CloudflareApi:
    state_sim = CloudflareApi(account_id=ACCOUNT, permission_groups=list(GROUPS))
    cli.deps.env = {"CLOUDFLARE_API_TOKEN": state_sim.token}
    cli.deps.cloudflare = lambda token: cloudflare.Cloudflare(
        api_token=token, http_client=state_sim.client(), max_retries=0
    )
    return state_sim


def create(cli: Cli, tmp_path: Path, *extra: str):
    return cli(
        "state-bucket",
        "create",
        "--account-id",
        ACCOUNT,
        "--bucket",
        "moltworker-state",
        "--credentials-file",
        str(tmp_path / "creds.env"),
        *extra,
    )


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value.strip("'")
    return values


def test_create_makes_a_bucket_and_a_token_scoped_to_it(
    cli: Cli, sim: CloudflareApi, tmp_path: Path
) -> None:
    run = create(cli, tmp_path)
    assert run.code == 0, run.text
    assert set(sim.buckets) == {"moltworker-state"}
    (token,) = sim.created_tokens
    (policy,) = token["policies"]
    assert policy["effect"] == "allow"
    assert policy["permission_groups"] == [{"id": WRITE_ID}]
    assert policy["resources"] == {
        f"com.cloudflare.edge.r2.bucket.{ACCOUNT}_default_moltworker-state": "*"
    }
    expected_url = (
        f"s3://moltworker-state?endpoint=https://{ACCOUNT}.r2.cloudflarestorage.com"
        "&region=auto&s3ForcePathStyle=true"
    )
    assert f"pulumi login '{expected_url}'" in run.out
    assert "PULUMI_BACKEND_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in run.out
    creds = tmp_path / "creds.env"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    nested = tmp_path / "new-dir" / "state.env"
    again = cli(
        "state-bucket",
        "create",
        "--account-id",
        ACCOUNT,
        "--bucket",
        "moltworker-state",
        "--credentials-file",
        str(nested),
    )
    assert again.code == 0, again.text
    assert stat.S_IMODE(nested.parent.stat().st_mode) == 0o700
    values = env_file(creds)
    assert values["AWS_ACCESS_KEY_ID"] == token["id"]
    assert values["AWS_SECRET_ACCESS_KEY"] == hashlib.sha256(token["value"].encode()).hexdigest()
    assert values["PULUMI_BACKEND_URL"] == expected_url
    for secret in (token["value"], values["AWS_SECRET_ACCESS_KEY"], sim.token):
        assert secret not in run.text


def test_show_secrets_prints_them_instead_of_writing_a_file(
    cli: Cli, sim: CloudflareApi, tmp_path: Path
) -> None:
    run = create(cli, tmp_path, "--show-secrets")
    assert run.code == 0, run.text
    (token,) = sim.created_tokens
    assert (
        f"export AWS_SECRET_ACCESS_KEY='{hashlib.sha256(token['value'].encode()).hexdigest()}'"
        in run.out
    )
    assert token["value"] not in run.text
    assert not (tmp_path / "creds.env").exists()


def test_an_existing_credentials_file_is_never_replaced(
    cli: Cli, sim: CloudflareApi, tmp_path: Path
) -> None:
    (tmp_path / "creds.env").write_text("export AWS_ACCESS_KEY_ID='old'\n")
    run = create(cli, tmp_path)
    assert run.code == 1
    assert "already exists" in run.err
    assert (tmp_path / "creds.env").read_text() == "export AWS_ACCESS_KEY_ID='old'\n"
    assert sim.requests == [] and sim.created_tokens == []


def test_an_existing_bucket_is_reused(cli: Cli, sim: CloudflareApi, tmp_path: Path) -> None:
    sim.buckets["moltworker-state"] = {"name": "moltworker-state", "creation_date": "2026-11-22"}
    run = create(cli, tmp_path)
    assert run.code == 0, run.text
    assert "already exists in this account: reusing it" in run.out
    assert len(sim.created_tokens) == 1


def test_a_refused_api_token_is_explained(cli: Cli, sim: CloudflareApi, tmp_path: Path) -> None:
    cli.deps.env = {"CLOUDFLARE_API_TOKEN": "an-expired-token-value-123"}
    run = create(cli, tmp_path)
    assert run.code == 1
    assert "Cloudflare refused to create the R2 bucket moltworker-state (401)" in run.err
    assert "an-expired-token-value-123" not in run.text
    assert not (tmp_path / "creds.env").exists()


def test_missing_token_permission_is_explained(
    cli: Cli, sim: CloudflareApi, tmp_path: Path
) -> None:
    sim.fail("POST", r"/tokens$", 403, message="Unauthorized to access requested resource")
    run = create(cli, tmp_path)
    assert run.code == 1
    assert "refused to create the bucket-scoped token (403)" in run.err
    assert "Account API Tokens: Edit" in run.err
    assert not (tmp_path / "creds.env").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--account-id", "not-an-account", "--bucket", "moltworker-state"], "not 32 hex"),
        (["--account-id", ACCOUNT, "--bucket", "Bad_Bucket"], "not valid for R2"),
    ],
)
def test_bad_names_are_refused_before_any_call(
    cli: Cli, sim: CloudflareApi, tmp_path: Path, argv: list[str], message: str
) -> None:
    run = cli("state-bucket", "create", *argv, "--credentials-file", str(tmp_path / "c.env"))
    assert run.code == 1
    assert message in run.err
    assert sim.requests == []


def test_unreachable_cloudflare_api(cli: Cli, sim: CloudflareApi, tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    cli.deps.cloudflare = lambda token: cloudflare.Cloudflare(
        api_token=token,
        http_client=httpx.Client(transport=httpx.MockTransport(down)),
        max_retries=0,
    )
    run = create(cli, tmp_path)
    assert run.code == 1
    assert "cannot reach the Cloudflare API to create the R2 bucket" in run.err
    assert not (tmp_path / "creds.env").exists()


def test_no_api_token(cli: Cli, tmp_path: Path) -> None:
    run = create(cli, tmp_path)
    assert run.code == 1
    assert "CLOUDFLARE_API_TOKEN is not set" in run.err


def moto_login_url(bucket: str, endpoint: str) -> str:
    return f"s3://{bucket}?endpoint={endpoint}&region=auto&s3ForcePathStyle=true"


def test_pulumi_state_round_trip_with_derived_credentials(
    cli: Cli, sim: CloudflareApi, tmp_path: Path, moto_endpoint: str, make_bucket: Callable[[], str]
) -> None:
    assert create(cli, tmp_path).code == 0
    creds = env_file(tmp_path / "creds.env")
    bucket = make_bucket()
    url = moto_login_url(bucket, moto_endpoint)
    cli.deps.env = {k: creds[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    run = cli("state-bucket", "check", "--backend-url", url)
    assert run.code == 0, run.text
    assert "state backend ok" in run.out
    assert creds["AWS_SECRET_ACCESS_KEY"] not in run.text

    # What `pulumi up` writes: a checkpoint under .pulumi/stacks/<project>/, path-style.
    backend = parse_login_url(url)
    assert backend.path_style and backend.region == "auto"
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=backend.endpoint,
        region_name=backend.region,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        config=BotoConfig(s3={"addressing_style": "path"}),
    )
    urls: list[str] = []
    s3.meta.events.register("before-send.s3.*", lambda request, **_: urls.append(request.url))
    checkpoint = {
        "version": 3,
        "checkpoint": {"stack": "organization/moltworker/dev", "latest": {"resources": []}},
    }
    key = ".pulumi/stacks/moltworker/dev.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(checkpoint).encode())
    assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == checkpoint
    assert urls and all(u.startswith(f"{moto_endpoint}/{bucket}/") for u in urls)
    # The probe of `check` cleaned up after itself.
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == [key]


def test_check_with_revoked_credentials(cli: Cli) -> None:
    cli.deps.env = {
        "AWS_ACCESS_KEY_ID": "revoked-key",
        "AWS_SECRET_ACCESS_KEY": "revoked-secret-0123",
    }
    with refusing_s3() as endpoint:
        run = cli("state-bucket", "check", "--backend-url", moto_login_url("state", endpoint))
    assert run.code == 1
    assert "refused the credentials (403 AccessDenied)" in run.err
    assert "revoked-secret-0123" not in run.text


def test_check_with_unreachable_endpoint(cli: Cli) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli.deps.env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "secret-value-1234"}
    run = cli(
        "state-bucket",
        "check",
        "--backend-url",
        moto_login_url("state", f"http://127.0.0.1:{port}"),
    )
    assert run.code == 1
    assert "cannot reach http://127.0.0.1" in run.err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/state", "must look like s3://"),
        ("s3://state?region=auto", "has no endpoint="),
        ("s3://state?endpoint=acct.r2.cloudflarestorage.com", "must be a full URL"),
    ],
)
def test_check_validates_the_url(cli: Cli, url: str, message: str) -> None:
    cli.deps.env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    run = cli("state-bucket", "check", "--backend-url", url)
    assert run.code == 1
    assert message in run.err
