"""The Containers application behind the Worker's `Sandbox` Durable Object class.

pulumi-cloudflare has no container resource, so this dynamic provider drives
`client.containers.applications` of the official SDK: create, read (404 = gone, so Pulumi
recreates it), diff, update (image / instance type through a rolling rollout, max_instances
through an edit) and delete.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.runtime import rpc

from infra.dynamic import cf

PERMISSION = "Containers Write"
# Changing these means a different application; the API cannot move an app between namespaces.
REPLACE_KEYS = ("account_id", "name", "script_name", "class_name")
ROLLOUT_KEYS = ("image", "instance_type")
INSTANCE_TYPES = ("lite", "basic", "standard-1", "standard-2", "standard-3", "standard-4")


def _configuration(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "image": props["image"],
        "instance_type": props["instance_type"],
        "observability": {"logs": {"enabled": True}},
    }


def _outs(props: dict[str, Any], app: Any) -> dict[str, Any]:
    outs = dict(props)
    durable_objects = getattr(app, "durable_objects", None)
    outs["namespace_id"] = getattr(durable_objects, "namespace_id", None) or ""
    outs["application_id"] = app.id
    return outs


class ContainerAppProvider(ResourceProvider):
    def __init__(self, http_client_factory: cf.HttpClientFactory | None = None) -> None:
        super().__init__()
        self.http_client_factory = http_client_factory

    def _client(self, props: dict[str, Any]) -> Any:
        return cf.client(props.get("api_token", ""), self.http_client_factory)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        if news.get("instance_type") not in (*INSTANCE_TYPES, rpc.UNKNOWN):
            failures.append(
                CheckFailure("instance_type", f"must be one of {', '.join(INSTANCE_TYPES)}")
            )
        max_instances = news.get("max_instances")
        if max_instances != rpc.UNKNOWN and (
            not isinstance(max_instances, int | float) or not 1 <= int(max_instances) <= 10
        ):
            failures.append(CheckFailure("max_instances", "must be a whole number in 1..10"))
        image = news.get("image")
        # An unknown image (a preview before the build; the engine sends a sentinel string) is
        # fine; a known one must be pinned by digest.
        if isinstance(image, str) and image != rpc.UNKNOWN and "@sha256:" not in image:
            failures.append(CheckFailure("image", f"{image!r} is not pinned by digest (@sha256:)"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        c = self._client(props)
        with cf.api_call(f"create container application {props['name']!r}", PERMISSION):
            app = c.containers.applications.create(
                account_id=props["account_id"],
                name=props["name"],
                scheduling_policy="default",
                # The Durable Object starts instances on demand; none run without a request.
                instances=0,
                max_instances=int(props["max_instances"]),
                configuration=_configuration(props),  # type: ignore[arg-type]
                durable_objects={
                    "class_name": props["class_name"],
                    "script_name": props["script_name"],
                },
            )
        if not getattr(app, "id", None):
            raise cf.CloudflareApiError(
                f"create container application {props['name']!r}: the API answered without an "
                "application id; check the dashboard (Containers) before running `pulumi up` again"
            )
        return CreateResult(app.id, _outs(props, app))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        c = self._client(props)
        try:
            app = c.containers.applications.get(id_, account_id=props["account_id"])
        except Exception as exc:
            if cf.is_not_found(exc):
                return ReadResult("", {})
            if isinstance(exc, cf.cloudflare.APIError):
                raise cf.explain(exc, f"read container application {id_}", PERMISSION) from None
            raise
        outs = dict(props)
        configuration = getattr(app, "configuration", None)
        outs["image"] = getattr(configuration, "image", props.get("image"))
        outs["instance_type"] = getattr(configuration, "instance_type", props.get("instance_type"))
        outs["max_instances"] = getattr(app, "max_instances", None) or props.get("max_instances")
        outs["name"] = app.name
        return ReadResult(id_, _outs(outs, app))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = (*REPLACE_KEYS, *ROLLOUT_KEYS, "max_instances", "api_token")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in REPLACE_KEYS]
        return DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=bool(replaces)
        )

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        c = self._client(news)
        account_id = news["account_id"]
        if any(olds.get(k) != news.get(k) for k in ROLLOUT_KEYS):
            with cf.api_call(f"roll out container application {id_}", PERMISSION):
                c.containers.applications.rollouts.create(
                    id_,
                    account_id=account_id,
                    description=f"pulumi: image {news['image']}, {news['instance_type']}",
                    strategy="rolling",
                    kind="full_auto",
                    step_percentage=100,
                    target_configuration=_configuration(news),  # type: ignore[arg-type]
                )
        if olds.get("max_instances") != news.get("max_instances"):
            with cf.api_call(f"resize container application {id_}", PERMISSION):
                c.containers.applications.edit(
                    id_, account_id=account_id, max_instances=int(news["max_instances"])
                )
        outs = dict(news)
        outs["application_id"] = id_
        outs["namespace_id"] = olds.get("namespace_id", "")
        return UpdateResult(outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        c = self._client(props)
        try:
            c.containers.applications.delete(id_, account_id=props["account_id"])
        except Exception as exc:
            if cf.is_not_found(exc):
                return  # already gone: the goal of delete is reached
            if isinstance(exc, cf.cloudflare.APIError):
                raise cf.explain(exc, f"delete container application {id_}", PERMISSION) from None
            raise


class ContainerApp(Resource, module="moltworker", name="ContainerApp"):
    application_id: pulumi.Output[str]
    namespace_id: pulumi.Output[str]
    image: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        account_id: pulumi.Input[str],
        app_name: pulumi.Input[str],
        script_name: pulumi.Input[str],
        class_name: pulumi.Input[str],
        image: pulumi.Input[str],
        instance_type: pulumi.Input[str],
        max_instances: pulumi.Input[int],
        api_token: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            ContainerAppProvider(),
            name,
            {
                "account_id": account_id,
                "name": app_name,
                "script_name": script_name,
                "class_name": class_name,
                "image": image,
                "instance_type": instance_type,
                "max_instances": max_instances,
                "api_token": pulumi.Output.secret(api_token),
                "application_id": None,
                "namespace_id": None,
            },
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["api_token"])
            ),
        )
