"""What the program deploys, the runtime must accept: the container env built from a stack's
settings by the same `worker_bindings` the program uses (through `ops upgrade`'s stand-ins for
the cloud resources) goes through the runtime's settings loader.

The program and the runtime each validate their own inputs; this ties the two ends of the
variables between them, for stacks with no chat channel, with one, and with all.
"""

from __future__ import annotations

import pytest

from ops import upgrade
from tests.contract.parsers import program_settings, runtime_settings

TOKENS = ("telegramBotToken", "discordBotToken", "slackBotToken", "slackAppToken")


@pytest.mark.parametrize(
    ("keep", "channels"),
    [
        ((), set()),
        (("telegramBotToken",), {"telegram"}),
        (("discordBotToken",), {"discord"}),
        (TOKENS, {"telegram", "discord", "slack"}),
    ],
    ids=["no channel", "telegram only", "discord only", "every channel"],
)
def test_the_runtime_accepts_the_env_the_program_deploys(
    keep: tuple[str, ...], channels: set[str]
) -> None:
    settings = program_settings(
        {key: None for key in TOKENS if key not in keep}
        | {"telegramDmPolicy": "allowlist", "slackDmPolicy": "open"}
    )
    env = upgrade.container_env(settings)

    verdict = runtime_settings(env)

    assert verdict.accepted, f"the runtime refuses what the program deploys: {verdict.why}"
    runtime = verdict.meaning
    assert {c.name for c in runtime.channels} == channels
    # A policy the stack set reaches its channel, not only the default.
    expected = {"telegram": "allowlist", "discord": "pairing", "slack": "open"}
    for channel in runtime.channels:
        assert channel.dm_policy == expected[channel.name], channel
    assert (
        not {f"{name.upper()}_DM_POLICY" for name in expected}
        - {f"{c.upper()}_DM_POLICY" for c in channels}
        & env.keys()
    ), "a DM policy went to the container for a channel without its token"
