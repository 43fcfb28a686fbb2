"""Start the policy pack the way the Pulumi CLI does and talk to it over its gRPC protocol.

The CLI's `pulumi-analyzer-policy-python` shim runs `python -u -m pulumi.policy <engine> .` in
the pack's directory, with the stack's project, name and config in the environment; the pack
prints its port and serves the Analyzer service. This does the same, so the tests exercise
`policies/__main__.py`, its imports and its reading of the stack config for real.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from tests.policies.policy_harness import Recorded, wire

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
# The pack serves until it is killed; if the test process dies without cleaning up (a hard
# timeout), the kernel ends the pack too instead of leaving it running on a shared machine.
# util-linux's setpriv is part of every Debian system; without it, cleanup is __exit__'s alone.
_SETPRIV = shutil.which("setpriv")
_DIE_WITH_PARENT = [_SETPRIV, "--pdeathsig", "TERM", "--"] if _SETPRIV else []
START_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 30.0


class PackProcess:
    def __init__(
        self, project: str, stack: str, config: Mapping[str, str], pack_dir: Path = PACK_DIR
    ) -> None:
        self.pack_dir = pack_dir
        self.project = project
        self.stack = stack
        self.config = dict(config)
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.stub: Any = None

    def __enter__(self) -> PackProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        env.update(
            PULUMI_PROJECT=self.project,
            PULUMI_STACK=self.stack,
            PULUMI_DRY_RUN="true",
            PULUMI_CONFIG=json.dumps(self.config),
        )
        # The engine address is unused by the pack unless it has to log; nothing listens there.
        self.process = subprocess.Popen(
            [*_DIE_WITH_PARENT, sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:9", "."],
            cwd=self.pack_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        port = self._read_port()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=START_TIMEOUT_S)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)
        return self

    def _read_port(self) -> int:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(remaining, 0))
            if not ready:
                self._fail("did not print its port in time")
            chunk = os.read(self.process.stdout.fileno(), 64)
            if not chunk:
                self._fail("exited before printing its port")
            line += chunk
        return int(line.strip())

    def _fail(self, what: str) -> None:
        assert self.process is not None
        self.process.kill()
        _, err = self.process.communicate(timeout=10)
        raise AssertionError(f"the policy pack {what}:\n{err.decode(errors='replace')[-2000:]}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate(timeout=10)

    def info(self) -> Any:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=CALL_TIMEOUT_S)

    def configure(self, policy_config: Mapping[str, Mapping[str, Any]]) -> None:
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, properties in policy_config.items():
            config = request.policyConfig[name]
            config.enforcementLevel = analyzer_pb2.MANDATORY
            config.properties.update(dict(properties))
        self.stub.Configure(request, timeout=CALL_TIMEOUT_S)

    def analyze(self, res: Recorded) -> list[Any]:
        request = analyzer_pb2.AnalyzeRequest(
            type=res.type,
            properties=wire(res.props),
            urn=res.urn,
            name=res.name,
            options=_options(res),
        )
        return list(self.stub.Analyze(request, timeout=CALL_TIMEOUT_S).diagnostics)

    def analyze_stack(self, resources: Iterable[Recorded]) -> list[Any]:
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(
                    type=res.type,
                    properties=wire(res.props),
                    urn=res.urn,
                    name=res.name,
                    options=_options(res),
                    parent=res.parent,
                    dependencies=res.dependencies,
                )
                for res in resources
            ]
        )
        return list(self.stub.AnalyzeStack(request, timeout=CALL_TIMEOUT_S).diagnostics)


def _options(res: Recorded) -> Any:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=res.protect,
        deleteBeforeReplace=bool(res.delete_before_replace),
        deleteBeforeReplaceDefined=res.delete_before_replace is not None,
        parent=res.parent,
    )
