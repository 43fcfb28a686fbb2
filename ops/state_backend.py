"""Pulumi state in an R2 bucket through Pulumi's DIY S3 backend.

`create` makes the bucket and an account API token that can read and write objects in that
bucket only; R2's S3 credentials are derived from the token (key id = token id, secret =
sha256 of the token value). `check` writes, reads and deletes a probe object through the exact
`pulumi login` URL, with the same credentials and path-style addressing the Pulumi CLI uses.

The login URL follows gocloud.dev's s3blob opener, which Pulumi's DIY backend uses: `endpoint`
is a full URL, `region=auto` is what R2 expects, and `s3ForcePathStyle=true` is accepted both by
current Pulumi CLIs (as the legacy name of `use_path_style`) and by older ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import cloudflare
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from infra.permissions import R2_BUCKET_ITEM_WRITE, r2_bucket_resource

from .errors import Console, OpsError

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_ACCOUNT_RE = re.compile(r"^[0-9a-f]{32}$")
PROBE_KEY = ".pulumi/.moltworker-state-probe"
PERMISSIONS_HINT = (
    "the Cloudflare API token needs 'Workers R2 Storage: Edit' and 'Account API Tokens: Edit' "
    "on this account (see docs/operations.md#api-token)"
)


@dataclass(frozen=True)
class StateCredentials:
    bucket: str
    endpoint: str
    access_key_id: str
    secret_access_key: str

    @property
    def login_url(self) -> str:
        return login_url(self.bucket, self.endpoint)

    def env_lines(self) -> list[str]:
        return [
            f"export PULUMI_BACKEND_URL='{self.login_url}'",
            f"export AWS_ACCESS_KEY_ID='{self.access_key_id}'",
            f"export AWS_SECRET_ACCESS_KEY='{self.secret_access_key}'",
        ]


def r2_endpoint(account_id: str) -> str:
    return f"https://{account_id}.r2.cloudflarestorage.com"


def login_url(bucket: str, endpoint: str) -> str:
    query = urlencode(
        {"endpoint": endpoint, "region": "auto", "s3ForcePathStyle": "true"}, safe=":/"
    )
    return f"s3://{bucket}?{query}"


def check_names(account_id: str, bucket: str) -> None:
    if not _ACCOUNT_RE.match(account_id):
        raise OpsError(
            f"account id {account_id!r} is not 32 hex characters: copy it from the dashboard URL "
            "(dash.cloudflare.com/<account id>)."
        )
    if not _BUCKET_RE.match(bucket):
        raise OpsError(
            f"bucket name {bucket!r} is not valid for R2: 3-63 lowercase letters, digits and '-'."
        )


def _cloudflare_failure(exc: cloudflare.APIError, doing: str) -> OpsError:
    if isinstance(exc, cloudflare.AuthenticationError | cloudflare.PermissionDeniedError):
        return OpsError(
            f"Cloudflare refused to {doing} ({exc.status_code}): the token is expired or lacks a "
            f"permission; {PERMISSIONS_HINT}."
        )
    if isinstance(exc, cloudflare.APIConnectionError):
        return OpsError(f"cannot reach the Cloudflare API to {doing}: check the network and retry.")
    status = getattr(exc, "status_code", "?")
    return OpsError(f"Cloudflare could not {doing} ({status}): {exc.message}")


def create_state_bucket(
    client: cloudflare.Cloudflare, account_id: str, bucket: str, token_name: str, console: Console
) -> StateCredentials:
    check_names(account_id, bucket)
    try:
        # A 409 means the bucket exists; the SDK would retry it, which only delays the answer.
        client.with_options(max_retries=0).r2.buckets.create(account_id=account_id, name=bucket)
        console.print(f"created R2 bucket {bucket}")
    except cloudflare.ConflictError:
        console.print(f"R2 bucket {bucket} already exists in this account: reusing it")
    except cloudflare.APIError as exc:
        raise _cloudflare_failure(exc, f"create the R2 bucket {bucket}") from None

    try:
        groups = [
            g
            for g in client.accounts.tokens.permission_groups.list(account_id=account_id)
            if g.name == R2_BUCKET_ITEM_WRITE and g.id
        ]
    except cloudflare.APIError as exc:
        raise _cloudflare_failure(exc, "list token permission groups") from None
    if len(groups) != 1:
        raise OpsError(
            f"the permission group {R2_BUCKET_ITEM_WRITE!r} was found {len(groups)} times: "
            f"R2 must be enabled on the account (dashboard: R2 > Overview) and {PERMISSIONS_HINT}."
        )
    group_id = groups[0].id
    assert group_id is not None  # filtered above
    # The same resource naming the infra program uses for its own bucket-scoped tokens.
    resource: dict[str, str] = json.loads(r2_bucket_resource(account_id, bucket))
    try:
        token = client.accounts.tokens.create(
            account_id=account_id,
            name=token_name,
            policies=[
                {"effect": "allow", "permission_groups": [{"id": group_id}], "resources": resource}
            ],
        )
    except cloudflare.APIError as exc:
        raise _cloudflare_failure(exc, "create the bucket-scoped token") from None
    if token is None or not token.id or not token.value:
        raise OpsError("Cloudflare answered the token creation without an id or value; retry.")
    console.redact.add(token.value)
    secret = hashlib.sha256(token.value.encode()).hexdigest()
    console.redact.add(secret)
    console.print(f"created token {token_name!r} (id {token.id}) limited to bucket {bucket}")
    return StateCredentials(bucket, r2_endpoint(account_id), token.id, secret)


def write_credentials_file(path: Path, creds: StateCredentials) -> None:
    """Create `path` with mode 0600; never replace an existing file (its token would be lost)."""
    # A directory we create is private too; an existing one keeps its mode.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OpsError(
            f"{path} already exists: keep it (it holds working credentials) or move it away, "
            "then run again with --credentials-file pointing elsewhere."
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(
            "# Pulumi state backend in R2 (created by `python -m ops state-bucket create`).\n"
            "# Load with: set -a; . <this file>; set +a   -- and set PULUMI_CONFIG_PASSPHRASE.\n"
        )
        handle.write("\n".join(creds.env_lines()) + "\n")


@dataclass(frozen=True)
class Backend:
    bucket: str
    prefix: str
    endpoint: str
    region: str
    path_style: bool


def parse_login_url(url: str) -> Backend:
    """The parts of an `s3://` Pulumi backend URL this project uses, validated."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise OpsError(
            "the backend URL must look like s3://<bucket>?endpoint=https://<account>.r2."
            "cloudflarestorage.com&region=auto&s3ForcePathStyle=true"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    endpoint = query.get("endpoint", "")
    if not endpoint:
        raise OpsError(
            "the backend URL has no endpoint=: R2 needs endpoint=https://<account>.r2.cloudflarestorage.com"
        )
    if urlsplit(endpoint).scheme not in ("https", "http"):
        raise OpsError(
            f"endpoint={endpoint!r} must be a full URL (https://...): current Pulumi CLIs "
            "require the scheme."
        )
    style = query.get("s3ForcePathStyle", query.get("use_path_style", "false")).lower()
    return Backend(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint=endpoint,
        region=query.get("region", "auto"),
        path_style=style in ("1", "true"),
    )


def check_backend(url: str, env: Mapping[str, str], console: Console) -> None:
    """Write, read back and delete a probe object where Pulumi keeps its state."""
    backend = parse_login_url(url)
    key_id = env.get("AWS_ACCESS_KEY_ID", "")
    secret = env.get("AWS_SECRET_ACCESS_KEY", "")
    if not key_id or not secret:
        raise OpsError(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set to the state bucket's "
            "S3 credentials (the file `state-bucket create` wrote)."
        )
    console.redact.add(secret)
    s3 = boto3.client(
        "s3",
        endpoint_url=backend.endpoint,
        region_name=backend.region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=BotoConfig(
            s3={"addressing_style": "path" if backend.path_style else "virtual"},
            connect_timeout=5,
            read_timeout=20,
            retries={"max_attempts": 2},
        ),
    )
    key = f"{backend.prefix}/{PROBE_KEY}" if backend.prefix else PROBE_KEY
    body = b'{"version": 3, "checkpoint": {}}'
    try:
        s3.put_object(Bucket=backend.bucket, Key=key, Body=body)
        read = s3.get_object(Bucket=backend.bucket, Key=key)["Body"].read()
        s3.delete_object(Bucket=backend.bucket, Key=key)
    except ClientError as exc:
        raise _s3_failure(exc, backend) from None
    except BotoCoreError as exc:
        raise OpsError(
            f"cannot reach {backend.endpoint} ({type(exc).__name__}): check the endpoint in the "
            "backend URL and the network."
        ) from None
    if read != body:
        raise OpsError(
            f"the probe object read back from {backend.bucket} differs from what was written."
        )
    console.print(f"state backend ok: wrote, read and deleted s3://{backend.bucket}/{key}")


def _s3_failure(exc: ClientError, backend: Backend) -> OpsError:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = exc.response.get("Error", {}).get("Code", "")
    if status in (401, 403):
        return OpsError(
            f"{backend.endpoint} refused the credentials ({status} {code}): they are expired, "
            f"revoked or not scoped to bucket {backend.bucket}; create new ones with "
            "`python -m ops state-bucket create`."
        )
    if code == "NoSuchBucket" or status == 404:
        return OpsError(
            f"bucket {backend.bucket} does not exist at {backend.endpoint}: create it first."
        )
    return OpsError(f"S3 request to {backend.endpoint} failed ({status} {code}).")
