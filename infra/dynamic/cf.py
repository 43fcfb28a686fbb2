"""One way to build a Cloudflare SDK client and to turn its failures into clear sentences.

Retries of 429 and 5xx are the SDK's own (it honours Retry-After / Retry-After-Ms up to 60 s);
this module only decides how many and explains what remains after them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cloudflare
import httpx

# Set by tests to route every client through a simulated API (httpx.MockTransport).
HttpClientFactory = Callable[[], httpx.Client]
MAX_RETRIES = 4


class CloudflareApiError(Exception):
    """A Cloudflare API failure explained in one sentence (never carries the token)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def client(
    api_token: str,
    http_client_factory: HttpClientFactory | None = None,
    base_url: str | None = None,
) -> cloudflare.Cloudflare:
    if not api_token:
        raise CloudflareApiError(
            "no Cloudflare API token reached the provider; "
            "`pulumi config set --secret cloudflare:apiToken` (paste it at the prompt)"
        )
    http_client = http_client_factory() if http_client_factory else None
    # base_url: the one wrangler is pointed at (CLOUDFLARE_API_BASE_URL), so the SDK reads the
    # state wrangler wrote; None is the SDK's default (api.cloudflare.com).
    return cloudflare.Cloudflare(
        api_token=api_token, max_retries=MAX_RETRIES, http_client=http_client, base_url=base_url
    )


def _api_messages(body: Any) -> str:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            parts = [
                f"{e.get('message', '')} (code {e.get('code')})".strip()
                for e in errors
                if isinstance(e, dict)
            ]
            if parts:
                return "; ".join(parts)
    return "no error details in the response"


def explain(exc: cloudflare.APIError, action: str, permission: str) -> CloudflareApiError:
    """Turn an SDK error into a sentence naming what failed and the fix."""
    if isinstance(exc, cloudflare.APIStatusError):
        status = exc.status_code
        detail = _api_messages(exc.body)
        if status == 401:
            msg = (
                f"{action}: the API token was rejected (401: {detail}); it is wrong, expired or "
                "revoked: `pulumi config set --secret cloudflare:apiToken` (paste it at the prompt)"
            )
        elif status == 403:
            msg = (
                f"{action}: the API token lacks the '{permission}' permission (403: {detail}); "
                "add it to the token in the dashboard (My Profile > API Tokens)"
            )
        elif status == 404:
            msg = f"{action}: not found (404: {detail})"
        elif status == 409:
            msg = (
                f"{action}: conflicts with an existing resource (409: {detail}); if it was "
                "created outside this stack, import it or delete it, then run `pulumi up` again"
            )
        elif status == 429:
            msg = (
                f"{action}: still rate limited after {MAX_RETRIES} retries (429: {detail}); "
                "wait a minute and run `pulumi up` again"
            )
        elif status >= 500:
            msg = (
                f"{action}: Cloudflare answered {status} after {MAX_RETRIES} retries ({detail}); "
                "check www.cloudflarestatus.com and run `pulumi up` again"
            )
        else:
            msg = f"{action}: the API refused the request ({status}: {detail})"
        return CloudflareApiError(msg, status)
    if isinstance(exc, cloudflare.APIConnectionError):
        return CloudflareApiError(
            f"{action}: could not reach api.cloudflare.com ({type(exc).__name__}); check the "
            "network or proxy and run `pulumi up` again"
        )
    return CloudflareApiError(f"{action}: unexpected API response ({type(exc).__name__})")


@contextmanager
def api_call(action: str, permission: str) -> Iterator[None]:
    try:
        yield
    except cloudflare.APIError as exc:
        raise explain(exc, action, permission) from None


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, cloudflare.NotFoundError)
