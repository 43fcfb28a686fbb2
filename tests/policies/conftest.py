from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_ambient_pulumi_config(monkeypatch: pytest.MonkeyPatch) -> None:
    # The program and the pack read stack config from the runtime first and the environment
    # second; a developer's shell with PULUMI_CONFIG* set must not change what the tests see.
    for key in list(os.environ):
        if key.startswith("PULUMI_CONFIG"):
            monkeypatch.delenv(key)
