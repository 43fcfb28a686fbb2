from __future__ import annotations

import argparse

import pytest
from ops_fakes import Cli, MemoryPulumi

from ops.__main__ import Deps
from ops.errors import Console


@pytest.fixture
def pulumi() -> MemoryPulumi:
    return MemoryPulumi()


@pytest.fixture
def cli(pulumi: MemoryPulumi) -> Cli:
    def factory(_args: argparse.Namespace, _console: Console) -> MemoryPulumi:
        return pulumi

    return Cli(pulumi, Deps(env={}, pulumi=factory))
