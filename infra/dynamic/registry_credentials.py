"""Short-lived push credentials for Cloudflare's managed registry, minted once per image build.

Why this is a resource and not a per-run function call: credentials fetched on every run would be
new image-build inputs on every run, so `pulumi preview` would always show the image changing.
Here they are minted when the *build fingerprint* (a hash of the build context and the pinned
OpenClaw version) changes, which is exactly when the image is rebuilt and pushed; otherwise the
stored (possibly expired, then unused) values stay put and nothing diffs.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from infra.dynamic import cf

REGISTRY_HOST = "registry.cloudflare.com"
PERMISSION = "Containers Write"
REPLACE_KEYS = ("account_id", "fingerprint", "expiration_minutes")


class RegistryCredentialsProvider(ResourceProvider):
    def __init__(self, http_client_factory: cf.HttpClientFactory | None = None) -> None:
        super().__init__()
        self.http_client_factory = http_client_factory

    def create(self, props: dict[str, Any]) -> CreateResult:
        c = cf.client(props.get("api_token", ""), self.http_client_factory)
        with cf.api_call(f"mint push credentials for {REGISTRY_HOST}", PERMISSION):
            creds = c.containers.registries.credentials.generate(
                REGISTRY_HOST,
                account_id=props["account_id"],
                expiration_minutes=int(props["expiration_minutes"]),
                permissions=["push", "pull"],
            )
        if not (creds.username and creds.password) or creds.registry_host != REGISTRY_HOST:
            raise cf.CloudflareApiError(
                f"mint push credentials for {REGISTRY_HOST}: the API answered without usable "
                f"credentials (host {creds.registry_host!r}); run `pulumi up` again"
            )
        outs = dict(props)
        outs.update(
            username=creds.username, password=creds.password, registry_host=creds.registry_host
        )
        return CreateResult(f"{props['account_id']}-{props['fingerprint'][:16]}", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # Credentials cannot be read back; they expire by themselves. Keep what was minted.
        return ReadResult(id_, props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_KEYS if olds.get(k) != news.get(k)]
        token_changed = olds.get("api_token") != news.get("api_token")
        return DiffResult(changes=bool(replaces) or token_changed, replaces=replaces)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Only the API token changed: keep the minted credentials, remember the new token.
        outs = dict(news)
        for key in ("username", "password", "registry_host"):
            outs[key] = olds.get(key)
        return UpdateResult(outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # nothing to revoke: the credentials expire after expiration_minutes


class RegistryCredentials(Resource, module="moltworker", name="RegistryCredentials"):
    username: pulumi.Output[str]
    password: pulumi.Output[str]
    registry_host: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        account_id: pulumi.Input[str],
        fingerprint: pulumi.Input[str],
        api_token: pulumi.Input[str],
        expiration_minutes: int = 60,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            RegistryCredentialsProvider(),
            name,
            {
                "account_id": account_id,
                "fingerprint": fingerprint,
                "expiration_minutes": expiration_minutes,
                "api_token": pulumi.Output.secret(api_token),
                "username": None,
                "password": None,
                "registry_host": None,
            },
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["api_token", "password"])
            ),
        )
