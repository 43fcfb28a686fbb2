"""One table of sample values per shared rule, run through every part that parses the rule.

A row names a value and what the contract says of it (accepted or not, and what it means when
the parts must agree on more than that). Every parser of the rule must say the same: the
program as `pulumi preview` runs it, the policy pack, the ops commands, the sandbox runtime's
settings, and the Worker's own code where the rule reaches it. A part that drifts fails its
row by name, e.g. `model/openrouter/anthropic/claude-3.5 [runtime MODEL_PRIMARY]`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.contract import parsers as p

pytestmark = pytest.mark.timeout(300)

ANY = object()  # the row does not pin a meaning (the value is refused, or meaning is a yes/no)


@dataclass(frozen=True)
class Row:
    rule: str
    value: str
    accepted: bool
    meaning: Any = ANY
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.rule}/{self.value!r}"


ROWS: list[Row] = [
    # --- model reference: provider/model, the model id may carry '/', '@', ':' (OpenRouter and
    # Workers AI ids do); the provider must be one the runtime routes through the AI Gateway.
    Row("model", "anthropic/claude-sonnet-4-5", True),
    Row("model", "openai/gpt-5-mini", True),
    Row("model", "anthropic/claude-3.5/extended", True, note="slash inside the id"),
    Row("model", "anthropic/claude-sonnet-4-5@20250929", True, note="Vertex-style @ revision"),
    Row("model", "openai/gpt-5:free", True),
    Row("model", "openrouter/anthropic/claude-3.5", False, note="issue 13: container exits 2"),
    Row("model", "workers-ai/@cf/meta/llama-3.1-8b-instruct", False, note="not routable"),
    Row("model", "claude-sonnet", False),
    Row("model", "anthropic/", False),
    Row("model", "anthropic/claude/", False),
    Row("model", "Anthropic/claude", False),
    Row("model", "1anthropic/claude", False),
    Row("model", "anthropic/claude sonnet", False),
    Row("model", "anthropic/a,b", False, note="MODEL_FALLBACKS is comma-joined"),
    # --- exact OpenClaw version: a semver 2.0 version without build metadata (what npm installs
    # exactly); a pre-release is allowed, ranges, tags and four-part numbers are not.
    Row("version", "2026.9.6", True),
    Row("version", "0.0.0", True),
    Row("version", "2026.9.6-beta.1", True),
    Row("version", "2026.9.6-beta-1", True, note="issue 13: program refused, pack accepted"),
    Row("version", "2026.9.6.1", False, note="issue 13: program accepted, pack refused"),
    Row("version", "2026.09.6", False, note="leading zero: not semver"),
    Row("version", "2026.9.6+build.1", False),
    Row("version", "2026.9.6-", False),
    Row("version", "2026.9", False),
    Row("version", "latest", False),
    Row("version", "^2026.9.6", False),
    Row("version", "v2026.9.6", False),
    # --- stack names: part of every physical name (moltworker-<stack>-data is an R2 bucket:
    # lowercase, digits, '-', at most 63), so 1..47 of [a-z0-9-], no '-' at either end.
    Row("stack", "dev", True),
    Row("stack", "pr-12", True),
    Row("stack", "staging-eu", True),
    Row("stack", "a" * 47, True),
    Row("stack", "a" * 48, False),
    Row("stack", "Prod", False, note="issue 13: ops allowed upper case"),
    Row("stack", "my_stack", False, note="issue 13: ops allowed '_'"),
    Row("stack", "dev.eu", False, note="issue 13: ops allowed '.'"),
    Row("stack", "-dev", False),
    Row("stack", "dev-", False),
    # --- production stacks: never ephemeral, never a template for review stacks.
    Row("production", "prod", True),
    Row("production", "production", True),
    Row("production", "prod-eu", True),
    Row("production", "Prod", True, note="the pack and ops must not take it for a test stack"),
    Row("production", "PRODUCTION-1", True),
    Row("production", "prod_eu", True),
    Row("production", "product", False),
    Row("production", "preprod", False),
    Row("production", "staging", False),
    # --- booleans (`ephemeral`): true/false in any case, blanks around ignored; anything else is
    # refused by the program and read as false (the side that keeps the data) elsewhere.
    Row("ephemeral", "true", True, True),
    Row("ephemeral", "false", True, False),
    Row("ephemeral", "True", True, True, note="issue 13: ops refused to destroy it"),
    Row("ephemeral", " TRUE ", True, True),
    Row("ephemeral", "False", True, False),
    Row("ephemeral", "", True, False),
    Row("ephemeral", "yes", False),
    Row("ephemeral", "1", False),
    # --- DM policies
    Row("dm-policy", "pairing", True, "pairing"),
    Row("dm-policy", "allowlist", True, "allowlist"),
    Row("dm-policy", "open", True, "open"),
    Row("dm-policy", "disabled", True, "disabled"),
    Row("dm-policy", " open ", True, "open"),
    Row("dm-policy", "Pairing", False),
    Row("dm-policy", "everyone", False),
    # --- instance types and the instance bound
    Row("instance-type", "lite", True),
    Row("instance-type", "standard-4", True),
    Row("instance-type", "standard-5", False),
    Row("instance-type", "Standard-1", False),
    Row("max-instances", "1", True),
    Row("max-instances", "10", True),
    Row("max-instances", "0", False),
    Row("max-instances", "11", False),
    Row("max-instances", "2.5", False),
    # --- snapshot generations kept (snapshotKeep -> MOLT_SNAPSHOT_KEEP)
    Row("snapshot-keep", "30", True, 30),
    Row("snapshot-keep", "1", True, 1),
    Row("snapshot-keep", "10000", True, 10000),
    Row("snapshot-keep", "10001", False, note="issue 13: runtime settings had no upper bound"),
    Row("snapshot-keep", "0", False),
    Row("snapshot-keep", "+5", False, note="issue 13: int() took it, isdigit() did not"),
    Row("snapshot-keep", "5.0", False),
    Row("snapshot-keep", "-1", False),
    # --- snapshot debounce (MOLT_SNAPSHOT_DEBOUNCE_S, runtime only)
    Row("snapshot-debounce", "2", True, 2.0),
    Row("snapshot-debounce", "0", True, 0.0),
    Row("snapshot-debounce", "0.5", True, 0.5),
    Row("snapshot-debounce", "60", True, 60.0),
    Row("snapshot-debounce", "61", False, note="issue 13: settings had no upper bound"),
    Row("snapshot-debounce", "-0.5", False),
    Row("snapshot-debounce", "nan", False),
    Row("snapshot-debounce", "inf", False),
    # --- sleepAfter (program config -> the Worker's SLEEP_AFTER): <n>s|m|h of at least a
    # minute, n without leading zeros and at most six digits, or never.
    Row("sleep-after", "10m", True, 600),
    Row("sleep-after", "60s", True, 60),
    Row("sleep-after", "1m", True, 60),
    Row("sleep-after", "2h", True, 7200),
    Row("sleep-after", "999999h", True, 999999 * 3600),
    Row("sleep-after", "never", True, None),
    Row("sleep-after", "59s", False),
    Row("sleep-after", "0m", False),
    Row("sleep-after", "01m", False, note="the Worker took it, the program did not"),
    Row("sleep-after", "1000000m", False, note="the program took it, the Worker did not"),
    Row("sleep-after", "10M", False),
    Row("sleep-after", "forever", False),
]


# --- which parsers judge each rule ------------------------------------------------------------


# The primary model of the fallback rows: one no row uses, so a row is never a duplicate.
FALLBACK_PRIMARY = "openai/gpt-5-nano"


def _program_model_primary(value: str) -> p.Verdict:
    return p.program({"modelPrimary": value, "modelFallbacks": "[]"})


def _program_model_fallback(value: str) -> p.Verdict:
    return p.program({"modelPrimary": FALLBACK_PRIMARY, "modelFallbacks": json.dumps([value])})


def _runtime_model_primary(value: str) -> p.Verdict:
    return p.runtime_settings({"MODEL_PRIMARY": value})


def _runtime_model_fallback(value: str) -> p.Verdict:
    return p.runtime_settings({"MODEL_PRIMARY": FALLBACK_PRIMARY, "MODEL_FALLBACKS": value})


def _program_version(value: str) -> p.Verdict:
    return p.program({"openclawVersion": value})


def _program_stack(value: str) -> p.Verdict:
    return _settings_verdict({"ephemeral": "false"}, stack=value)


def _program_grants_ephemeral(stack: str) -> p.Verdict:
    # Production means: `ephemeral: true` is refused (a name the program refuses outright is
    # never granted it either).
    verdict = _settings_verdict({"ephemeral": "true"}, stack=stack)
    return p.Verdict(True, not verdict.accepted, why=verdict.why)


def _pack_production(stack: str) -> p.Verdict:
    from policies.stack_profile import StackProfile

    profile = StackProfile.of("moltworker", stack, ephemeral=True)
    if profile.production == profile.ephemeral:
        return p.Verdict(
            False, why=f"production={profile.production} ephemeral={profile.ephemeral}"
        )
    return p.Verdict(True, profile.production)


def _ops_production_template(stack: str) -> p.Verdict:
    verdict = p.ops_review_template(stack)
    return p.Verdict(True, not verdict.accepted, why=verdict.why)


def _settings_verdict(
    overrides: dict[str, str | None],
    stack: str = "dev",
    meaning: Callable[[Any], Any] | None = None,
) -> p.Verdict:
    try:
        settings = p.program_settings(overrides, stack)
    except Exception as exc:
        return p.Verdict(False, why=str(exc))
    return p.Verdict(True, meaning(settings) if meaning else None)


def _program_ephemeral(value: str) -> p.Verdict:
    return _settings_verdict({"ephemeral": value}, "pr-7", lambda s: s.ephemeral)


def _pack_ephemeral(value: str) -> p.Verdict:
    return p.Verdict(True, p.policy_profile("pr-7", {"ephemeral": value}).ephemeral)


def _program_dm(value: str) -> p.Verdict:
    return _settings_verdict(
        {"telegramDmPolicy": value}, meaning=lambda s: s.channels.telegram_dm_policy
    )


def _runtime_dm(value: str) -> p.Verdict:
    verdict = p.runtime_settings(
        {"TELEGRAM_BOT_TOKEN": "1234:" + "x" * 30, "TELEGRAM_DM_POLICY": value}
    )
    if not verdict.accepted:
        return verdict
    return p.Verdict(True, verdict.meaning.channels[0].dm_policy)


def _program_keep(value: str) -> p.Verdict:
    return _settings_verdict({"snapshotKeep": value}, meaning=lambda s: s.snapshots.keep)


def _program_sleep_after(value: str) -> p.Verdict:
    return _settings_verdict({"sleepAfter": value})


_WORKER_SLEEP: dict[str, p.Verdict] = {}


def _worker_sleep_after(value: str) -> p.Verdict:
    if not _WORKER_SLEEP:
        _WORKER_SLEEP.update(
            p.worker_sleep_after_all(r.value for r in ROWS if r.rule == "sleep-after")
        )
    return _WORKER_SLEEP[value]


# A parser may be judged on acceptance only (meaning=False) or on meaning as well.
PARSERS: dict[str, list[tuple[str, Callable[[str], p.Verdict], bool]]] = {
    "model": [
        ("program modelPrimary", _program_model_primary, False),
        ("program modelFallbacks", _program_model_fallback, False),
        ("runtime MODEL_PRIMARY", _runtime_model_primary, False),
        ("runtime MODEL_FALLBACKS", _runtime_model_fallback, False),
    ],
    "version": [
        ("program openclawVersion", _program_version, False),
        ("pack pinned-versions", p.policy_version, False),
    ],
    "stack": [
        ("program stack name", _program_stack, False),
        ("ops --stack", p.ops_stack_name, False),
    ],
    "production": [
        ("program refuses ephemeral", _program_grants_ephemeral, True),
        ("pack production", _pack_production, True),
        ("ops review template", _ops_production_template, True),
    ],
    "ephemeral": [
        ("program ephemeral", _program_ephemeral, True),
        ("pack ephemeral", _pack_ephemeral, True),
        ("ops review destroy", p.ops_destroys_as_ephemeral, True),
    ],
    "dm-policy": [
        ("program telegramDmPolicy", _program_dm, True),
        ("runtime TELEGRAM_DM_POLICY", _runtime_dm, True),
    ],
    "instance-type": [("program instanceType", p.program_key("instanceType"), False)],
    "max-instances": [
        ("program maxInstances", p.program_key("maxInstances"), False),
        ("pack container-bounded (widest bound)", p.policy_max_instances_at_widest_bound, False),
    ],
    "snapshot-keep": [
        ("program snapshotKeep", _program_keep, True),
        ("runtime settings", p.runtime_var("MOLT_SNAPSHOT_KEEP", "snapshot_keep"), True),
        ("runtime snapshots", p.runtime_snapshot_keep, True),
    ],
    "snapshot-debounce": [
        (
            "runtime settings",
            p.runtime_var("MOLT_SNAPSHOT_DEBOUNCE_S", "snapshot_debounce_s"),
            True,
        ),
        ("runtime snapshots", p.runtime_snapshot_debounce, True),
    ],
    "sleep-after": [
        ("program sleepAfter", _program_sleep_after, False),
        ("Worker parseSleepAfter", _worker_sleep_after, True),
    ],
}

# Rules whose refused values still carry a meaning elsewhere: the program refuses a malformed
# flag, the pack and ops read it as false (data kept, nothing destroyed).
REFUSED_MEANS = {"ephemeral": False}


def _expected(row: Row, judged_on_meaning: bool, name: str) -> tuple[bool, Any]:
    if row.rule in REFUSED_MEANS and not row.accepted and not name.startswith("program"):
        return True, REFUSED_MEANS[row.rule]
    if row.rule == "production":
        return True, row.accepted
    return row.accepted, row.meaning if judged_on_meaning else ANY


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_every_parser_of_the_rule_agrees(row: Row) -> None:
    disagree = []
    for name, parse, judged_on_meaning in PARSERS[row.rule]:
        verdict = parse(row.value)
        accepted, meaning = _expected(row, judged_on_meaning, name)
        if verdict.accepted != accepted or (meaning is not ANY and verdict.meaning != meaning):
            said = "accepts" if verdict.accepted else "refuses"
            shown = "" if meaning is ANY else f" as {verdict.meaning!r} (want {meaning!r})"
            disagree.append(f"[{name}] {said}{shown}: {verdict.why.splitlines()[:3]}")
    assert not disagree, f"{row.id} ({row.note or 'expected ' + str(row.accepted)}):\n" + "\n".join(
        disagree
    )


def test_every_rule_has_a_valid_and_an_invalid_row() -> None:
    for rule in PARSERS:
        verdicts = {r.accepted for r in ROWS if r.rule == rule}
        assert verdicts == {True, False}, rule
