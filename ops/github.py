"""The one GitHub API call the sweep needs: is pull request N of a repository still open."""

from __future__ import annotations

import re
from typing import Literal

import httpx

from .errors import OpsError

API = "https://api.github.com"
_REPO_RE = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")

PrState = Literal["open", "closed"]


def check_repo(repo: str) -> str:
    if not _REPO_RE.match(repo) or repo.endswith((".", "/")):
        raise OpsError(f"repository {repo!r} must look like owner/name (e.g. octo/moltworker).")
    return repo


class GitHub:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = API,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise OpsError(
                "GITHUB_TOKEN is not set: in a workflow pass `env: GITHUB_TOKEN: "
                "${{ github.token }}` with `permissions: pull-requests: read`."
            )
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            transport=transport,
            headers={
                # The token travels in a header only; URLs are safe to log.
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )

    def close(self) -> None:
        self._client.close()

    def pr_state(self, repo: str, number: int) -> PrState:
        path = f"/repos/{check_repo(repo)}/pulls/{number}"
        try:
            response = self._client.get(path)
        except httpx.HTTPError as exc:
            raise OpsError(
                f"cannot reach the GitHub API ({type(exc).__name__}); retry later."
            ) from None
        if response.status_code in (401, 403):
            raise OpsError(
                f"GitHub refused GET {path} ({response.status_code}): the token is expired or "
                "lacks `pull-requests: read` on this repository."
            )
        if response.status_code == 404:
            raise OpsError(
                f"pull request #{number} does not exist in {repo} (or the token cannot see it): "
                "not touching its stack; remove it by hand if it is a leftover."
            )
        if response.status_code != 200:
            raise OpsError(f"GitHub answered {response.status_code} for GET {path}; retry later.")
        try:
            state = response.json().get("state")
        except (ValueError, AttributeError):
            state = None
        if state not in ("open", "closed"):
            raise OpsError(f"GitHub answered GET {path} without a pull request state.")
        return state
