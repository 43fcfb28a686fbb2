"""Moltworker: a personal OpenClaw agent on Cloudflare, one `pulumi up` per stack."""

import pulumi

from infra import build, settings
from infra.access import Access, AccessArgs
from infra.ai_gateway import AiGateway, AiGatewayArgs
from infra.generated_secrets import GeneratedSecrets, GeneratedSecretsArgs
from infra.sandbox import SandboxArgs, sandbox_container
from infra.storage import Storage, StorageArgs
from infra.wiring import worker_bindings
from infra.worker import Worker, WorkerArgs

s = settings.load()
keep = pulumi.ResourceOptions(protect=not s.ephemeral)

secrets = GeneratedSecrets(
    "secrets", GeneratedSecretsArgs(rotate=s.rotate, protect_snapshot_key=not s.ephemeral)
)
storage = Storage(
    "storage",
    StorageArgs(
        account_id=s.account_id,
        bucket_name=f"{s.resource_prefix}-data",
        trash_days=s.snapshots.trash_days,
        multipart_abort_days=s.snapshots.multipart_abort_days,
        ephemeral=s.ephemeral,
    ),
    opts=keep,
)
access = Access(
    "access",
    AccessArgs(
        account_id=s.account_id,
        hostname=s.hostname,
        admin_emails=list(s.admin_emails),
        admin_email_domains=list(s.admin_email_domains),
        service_token=s.access_service_token,
        team_domain=s.access_team_domain,
    ),
)
gateway = AiGateway(
    "ai",
    AiGatewayArgs(
        account_id=s.account_id,
        gateway_id=s.resource_prefix,
        primary_model=s.model_primary.ref,
        fallback_models=[m.ref for m in s.model_fallbacks],
        rate_limit=s.ai_gateway.rate_limit,
        rate_limit_interval_s=s.ai_gateway.rate_limit_interval_s,
        logs=s.ai_gateway.logs,
        cache_ttl_s=s.ai_gateway.cache_ttl_s,
    ),
)
worker_secrets, worker_vars = worker_bindings(s, secrets, storage, access, gateway)
container = sandbox_container(
    SandboxArgs(
        app_name=s.resource_prefix,
        context_dir=s.container_dir,
        openclaw_version=s.sandbox.openclaw_version,
        instance_type=s.sandbox.instance_type,
        max_instances=s.sandbox.max_instances,
    )
)
worker = Worker(
    "worker",
    WorkerArgs(
        account_id=s.account_id,
        script_name=s.worker_name,
        bundle=build.worker_bundle(s.worker_dir, s.worker_bundle_dir),
        worker_dir=s.worker_dir,
        assets_dir=s.worker_dir / "public",
        bucket_name=storage.bucket_name,
        hostname=s.hostname,
        container=container,
        api_token=s.cloudflare_api_token,
        secrets=worker_secrets,
        vars=worker_vars,
        custom_domain=s.custom_domain,
        zone_id=s.zone_id,
        cron=s.cron,
        adopt=s.adopt_worker,
    ),
)

# Output names are read by ops/ (ops/outputs.py); secrets stay secrets in the state and the CLI.
pulumi.export("workerUrl", worker.url)
pulumi.export("adminUrl", worker.url.apply(lambda u: f"{u}/_admin/"))
pulumi.export("aiGatewayEndpoint", gateway.base_url)
pulumi.export("imageRef", worker.image)
pulumi.export("bucket", storage.bucket_name)
pulumi.export("r2Endpoint", storage.endpoint)
pulumi.export("r2AccessKeyId", storage.access_key_id)
pulumi.export("r2SecretAccessKey", storage.secret_access_key)
pulumi.export("snapshotKey", secrets.snapshot_key)
pulumi.export("snapshotKeep", s.snapshots.keep)
pulumi.export("ephemeral", s.ephemeral)
pulumi.export("gatewayToken", secrets.gateway_token)
pulumi.export("accessTeamDomain", access.team_domain)
if access.service_token_client_id is not None:
    pulumi.export("accessClientId", access.service_token_client_id)
    pulumi.export("accessClientSecret", access.service_token_client_secret)
