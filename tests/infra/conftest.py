from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_ambient_pulumi_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # The program reads config from the runtime first and the environment second; a developer's
    # shell with PULUMI_CONFIG* set must not change what the tests see.
    for key in list(os.environ):
        if key.startswith("PULUMI_CONFIG"):
            monkeypatch.delenv(key)


def _import_quietly() -> None:
    # pulumi_cloudflare warns about its own deprecated resource classes on import; importing it
    # once here keeps that noise (not ours to fix) out of every test report.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pulumi_cloudflare  # noqa: F401


_import_quietly()
