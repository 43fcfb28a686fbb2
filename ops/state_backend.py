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

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

from .context import Commands, Deps
from .errors import Console, OpsError

# boto3, the Cloudflare SDK and infra.permissions (which loads the Pulumi provider) take seconds
# to import, and `python -m ops` loads this module for every command to build its parser: they
# are imported by the two functions that use them.
if TYPE_CHECKING:
    import cloudflare
    from botocore.exceptions import ClientError

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
    import cloudflare

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
    import cloudflare

    from infra.permissions import R2_BUCKET_ITEM_WRITE, r2_bucket_resource

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
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

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


# --- command line ----------------------------------------------------------------------------


def cmd_state_create(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    token = deps.env.get("CLOUDFLARE_API_TOKEN", "")
    if not token:
        raise OpsError(
            "CLOUDFLARE_API_TOKEN is not set: export a token with 'Workers R2 Storage: Edit' "
            "and 'Account API Tokens: Edit' (read it with `read -s`, never type it on the "
            "command line)."
        )
    console.redact.add(token)
    account_id = args.account_id or deps.env.get("CLOUDFLARE_ACCOUNT_ID", "")
    path = Path(args.credentials_file).expanduser()
    if not args.show_secrets and path.exists():
        # Checked before anything is created: the new token could not be shown again.
        raise OpsError(
            f"{path} already exists: keep it (it may hold working credentials) or move it "
            "away, or pass another --credentials-file."
        )
    creds = create_state_bucket(
        deps.cloudflare(token),
        account_id,
        args.bucket,
        args.token_name or f"pulumi-state-{args.bucket}",
        console,
    )
    console.print("")
    console.print("Log in to the state backend with:")
    console.print(f"  pulumi login '{creds.login_url}'")
    if args.show_secrets:
        console.print("Set these variables (they are shown because of --show-secrets):")
        for line in creds.env_lines():
            # Printed on purpose: bypass the redactor for exactly these lines.
            print(f"  {line}", file=deps.out or sys.stdout, flush=True)
    else:
        write_credentials_file(path, creds)
        console.print(
            f"Credentials written to {path} (mode 0600): PULUMI_BACKEND_URL, AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY. Load them with:"
        )
        console.print(f"  set -a; . {path}; set +a")
    console.print(
        "and choose a passphrase for the stacks' secrets: export PULUMI_CONFIG_PASSPHRASE"
    )
    return 0


def cmd_state_check(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    url = args.backend_url or deps.env.get("PULUMI_BACKEND_URL", "")
    if not url:
        raise OpsError("pass --backend-url or set PULUMI_BACKEND_URL to the `pulumi login` URL.")
    check_backend(url, deps.env, console)
    return 0


def register(commands: Commands) -> None:
    state = commands.add_parser(
        "state-bucket",
        help="keep Pulumi state in an R2 bucket (create it, check it)",
        description="Pulumi state in R2 through Pulumi's S3 (DIY) backend.",
    )
    actions = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create the state bucket and a token scoped to it",
        description="Create an R2 bucket and an account API token limited to it, then print the "
        "`pulumi login` line. Reads CLOUDFLARE_API_TOKEN from the environment. The S3 "
        "credentials go to a new 0600 file unless --show-secrets prints them.",
    )
    create.add_argument(
        "--account-id", help="Cloudflare account id (default: $CLOUDFLARE_ACCOUNT_ID)"
    )
    create.add_argument("--bucket", required=True, help="state bucket name, e.g. moltworker-state")
    create.add_argument(
        "--token-name", help="name of the scoped token (default: pulumi-state-<bucket>)"
    )
    create.add_argument(
        "--credentials-file",
        default="~/.config/moltworker/pulumi-state.env",
        help="new file (mode 0600) for the S3 credentials (default: %(default)s)",
    )
    create.add_argument("--show-secrets", action="store_true", help="print the credentials instead")
    create.set_defaults(handler=cmd_state_create)
    check = actions.add_parser(
        "check",
        help="write, read and delete a probe object in the state backend",
        description="Use the `pulumi login` URL and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
        "to write, read back and delete a probe object, as the Pulumi CLI would.",
    )
    check.add_argument("--backend-url", help="the s3:// login URL (default: $PULUMI_BACKEND_URL)")
    check.set_defaults(handler=cmd_state_check)
