"""`init`: from a fresh clone to a configured stack, then the preflight.

Every answer is checked by the program's own settings loader (`infra.settings.load`, run over
the stack's config with the answer in it), so a bad answer gets exactly the error `pulumi up`
would give, and interactively the question is asked again. Secrets are read without echo and
handed to `pulumi config set --secret` on its standard input: never on a command line, in shell
history or in what this command prints.

Non-interactively (`--non-interactive`, for CI) every answer comes from an environment variable
(`ENV` below; docs/operations.md lists them), an unset one keeps the stack's current value, and
all problems are reported at once.
"""

from __future__ import annotations

import argparse
import contextvars
import getpass
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pulumi

from infra import settings

from .context import Commands, Deps
from .errors import Console, OpsError
from .pulumi_cli import PulumiCli, check_stack_name

NS = settings.PROJECT
TOKEN_KEY = settings.CLOUDFLARE_TOKEN_KEY
# Where each answer comes from in non-interactive mode. The Cloudflare and provider variables
# are the names those tools themselves read, so CI secrets need no renaming.
ENV = {
    "stack": "MOLTWORKER_STACK",
    "accountId": "CLOUDFLARE_ACCOUNT_ID",
    TOKEN_KEY: "CLOUDFLARE_API_TOKEN",
    "customDomain": "MOLTWORKER_CUSTOM_DOMAIN",
    "zoneId": "MOLTWORKER_ZONE_ID",
    "workersSubdomain": "MOLTWORKER_WORKERS_SUBDOMAIN",
    "adminEmails": "MOLTWORKER_ADMIN_EMAILS",
    "modelPrimary": "MOLTWORKER_MODEL",
    "modelFallbacks": "MOLTWORKER_MODEL_FALLBACKS",
    "anthropicApiKey": "ANTHROPIC_API_KEY",
    "openaiApiKey": "OPENAI_API_KEY",
}
# Offered when the stack has no model yet; any provider/model ref the loader accepts works.
DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-5-mini"}
NONE_WORDS = ("-", "none")
_PLACEHOLDER = "set"  # stands in for a secret's value when the loader checks the config


def full_key(key: str) -> str:
    return key if ":" in key else f"{NS}:{key}"


class StackCli(Protocol):
    """What `init` needs from the Pulumi CLI (`ops.pulumi_cli.PulumiCli` implements it)."""

    def whoami(self) -> str: ...

    def stack_names(self) -> list[str]: ...

    def stack_create(self, stack: str) -> None: ...

    def config(self, stack: str) -> dict[str, str]: ...

    def config_secret_keys(self, stack: str) -> set[str]: ...

    def config_set(self, stack: str, key: str, value: str) -> None: ...

    def config_set_secret(self, stack: str, key: str, value: str) -> None: ...

    def config_set_list(self, stack: str, key: str, values: list[str]) -> None: ...

    def config_rm(self, stack: str, key: str) -> None: ...


# --- the contract: the settings loader over the config being built ---------------------------


def load_settings(
    stack: str,
    values: Mapping[str, str],
    secret_keys: Iterable[str],
    warn: Callable[[str], None] = lambda _: None,
) -> settings.Settings:
    """`infra.settings.load` over this config (full keys -> raw values); SettingsError if bad."""

    def run() -> settings.Settings:
        pulumi.runtime.set_all_config(dict(values), sorted(secret_keys))
        return settings.load(pulumi.Config(NS), stack, warn=warn)

    # The SDK keeps config in context variables: a copied context leaves the caller's alone.
    return contextvars.copy_context().run(run)


def loader_problems(stack: str, values: Mapping[str, str], secret_keys: Iterable[str]) -> list[str]:
    """Every problem `infra.settings.load` finds in this config (full keys -> raw values)."""
    try:
        load_settings(stack, values, secret_keys)
    except settings.SettingsError as err:
        return err.problems
    return []


def secret_problems(key: str, value: str) -> list[str]:
    """The preflight's check of a pasted secret (swapped, quoted, an assignment, a key name)."""
    from . import doctor  # here, not on top: it loads the Cloudflare provider (slow)

    config = doctor.StackConfig({key: value}, {key}, set(), "init")
    return [f.message for f in doctor.check_secrets(config) if not f.ok]


@dataclass
class Draft:
    """The stack's config as it will be after `init`: current values with the answers applied."""

    stack: str
    values: dict[str, str] = field(default_factory=dict)  # full key -> raw plain value
    secret_keys: set[str] = field(default_factory=set)  # secrets already stored in the stack
    secrets: dict[str, str] = field(default_factory=dict)  # full key -> new secret value
    removed: set[str] = field(default_factory=set)

    def get(self, key: str) -> str:
        return self.values.get(full_key(key), "")

    def put(self, key: str, value: str) -> None:
        self.values[full_key(key)] = value
        self.removed.discard(full_key(key))

    def drop(self, key: str) -> None:
        # Removed even when the draft never had it: a new stack adopts a Pulumi.<stack>.yaml
        # already in the checkout (the example stacks), and `config rm` of an absent key is a
        # no-op.
        self.values.pop(full_key(key), None)
        self.removed.add(full_key(key))

    def problems(self, *keys: str) -> list[str]:
        """The loader's problems that concern these keys (others are asked about elsewhere)."""
        values = dict(self.values)
        secret_keys = self.secret_keys | set(self.secrets)
        for key in secret_keys:
            values.setdefault(key, _PLACEHOLDER)
        prefixes = tuple(f"{full_key(k)}:" for k in keys)
        return [
            p for p in loader_problems(self.stack, values, secret_keys) if p.startswith(prefixes)
        ]


# --- where answers come from -----------------------------------------------------------------


class Answers:
    """Interactive answers (asked again while wrong) or environment ones (problems collected)."""

    def __init__(
        self,
        console: Console,
        *,
        env: Mapping[str, str] | None = None,
        read_line: Callable[[str], str] = input,
        read_secret: Callable[[str], str] | None = None,
        attempts: int = 5,
    ) -> None:
        self.console = console
        self.env = env  # None: interactive
        self.read_line = read_line
        self.read_secret = read_secret
        self.attempts = attempts
        self.collected: list[str] = []

    @property
    def interactive(self) -> bool:
        return self.env is None

    def text(
        self,
        key: str,
        question: str,
        default: str,
        check: Callable[[str], list[str]],
    ) -> str:
        if self.env is not None:
            raw = self.env.get(ENV[key], default).strip()
            self.collect(key, check(raw))
            return raw
        for _ in range(self.attempts):
            shown = f" [{default}]" if default else ""
            raw = self.read_line(f"{question}{shown}: ").strip() or default
            problems = check(raw)
            if not problems:
                return raw
            for problem in problems:
                self.console.print(f"  {problem}")
        raise OpsError(f"no valid answer for {full_key(key)} after {self.attempts} tries.")

    def secret(
        self, key: str, question: str, *, stored: bool, check: Callable[[str], list[str]]
    ) -> str | None:
        """A new secret value, or None to keep the one the stack already holds."""
        if self.env is not None:
            raw = self.env.get(ENV[key], "")
            if not raw:
                return None
            self.console.redact.add(raw)
            self.collect(key, check(raw))
            return raw
        assert self.read_secret is not None
        hint = " (input hidden; Enter keeps the stored one)" if stored else " (input hidden)"
        for _ in range(self.attempts):
            raw = self.read_secret(f"{question}{hint}: ")
            if not raw and stored:
                return None
            self.console.redact.add(raw)
            problems = check(raw)
            if not problems:
                return raw
            for problem in problems:
                self.console.print(f"  {problem}")
        raise OpsError(f"no valid value for {full_key(key)} after {self.attempts} tries.")

    def collect(self, key: str, problems: list[str]) -> None:
        self.collected += [f"{p} (from ${ENV[key]})" for p in problems]


# --- the questions ---------------------------------------------------------------------------


def stack_problems(stack: str) -> list[str]:
    try:
        check_stack_name(stack)
    except OpsError as exc:
        return [str(exc)]
    # The loader's own rule for stack names (they are part of resource names).
    return [p for p in loader_problems(stack, {}, []) if p.startswith("stack name")]


def _split(raw: str) -> list[str]:
    if raw.strip().lower() in NONE_WORDS:
        return []
    return [part.strip() for part in raw.split(",") if part.strip()]


def _listed(draft: Draft, key: str) -> list[str]:
    raw = draft.get(key)
    try:
        value = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _ask_value(
    answers: Answers,
    draft: Draft,
    key: str,
    question: str,
    normalize: Callable[[str], str] = str,
) -> str:
    def check(raw: str) -> list[str]:
        draft.put(key, normalize(raw))
        return draft.problems(key)

    value = normalize(answers.text(key, question, draft.get(key), check))
    draft.put(key, value)
    return value


def _ask_list(answers: Answers, draft: Draft, key: str, question: str, default: list[str]) -> None:
    def check(raw: str) -> list[str]:
        draft.put(key, json.dumps(_split(raw)))
        return draft.problems(key)

    raw = answers.text(key, question, ", ".join(default), check)
    draft.put(key, json.dumps(_split(raw)))


def _ask_secret(answers: Answers, draft: Draft, key: str, question: str) -> None:
    fk = full_key(key)
    stored = fk in draft.secret_keys

    def missing() -> list[str]:
        # The loader's own sentence when it has one (the API token); provider keys are only a
        # warning there, but a first chat needs one.
        return draft.problems(key) or [
            f"{fk}: is required for the models chosen; `pulumi config set --secret {fk}`"
        ]

    def check(raw: str) -> list[str]:
        if not raw:
            draft.secrets.pop(fk, None)
            return missing()
        return secret_problems(fk, raw)

    value = answers.secret(key, question, stored=stored, check=check)
    if value is not None:
        draft.secrets[fk] = value
    elif not stored:
        answers.collect(key, missing())


def ask_all(answers: Answers, draft: Draft) -> None:
    """Every question, in the order a first deploy needs them; fills `draft`."""
    _ask_value(
        answers, draft, "accountId", "Cloudflare account id (32 hex, from the dashboard URL)"
    )
    _ask_secret(answers, draft, TOKEN_KEY, "Cloudflare API token (docs/operations.md#api-token)")

    custom = _ask_value(
        answers,
        draft,
        "customDomain",
        "Custom domain (empty or '-': serve on <name>.workers.dev)",
        lambda raw: "" if raw.lower() in NONE_WORDS else raw,
    )
    if custom:
        draft.drop("workersSubdomain")
        _ask_value(answers, draft, "zoneId", f"Zone id of {custom}")
    else:
        draft.drop("customDomain")
        draft.drop("zoneId")
        _ask_value(answers, draft, "workersSubdomain", "The account's workers.dev subdomain")

    _ask_list(
        answers,
        draft,
        "adminEmails",
        "Admin emails allowed through Access (comma-separated)",
        _listed(draft, "adminEmails"),
    )

    current = draft.get("modelPrimary")
    if answers.interactive:
        provider = answers.text(
            "modelPrimary",
            f"Model provider ({', '.join(sorted(DEFAULT_MODELS))}, or another)",
            current.split("/", 1)[0] if "/" in current else "anthropic",
            lambda raw: [] if raw else [f"{NS}:modelPrimary: name a provider, e.g. anthropic"],
        )
        if not current.startswith(f"{provider}/"):
            model = DEFAULT_MODELS.get(provider)
            draft.put("modelPrimary", f"{provider}/{model}" if model else "")
        primary = _ask_value(
            answers,
            draft,
            "modelPrimary",
            f"Model ({provider}/<model>, or just <model>)",
            lambda raw: raw if "/" in raw or not raw else f"{provider}/{raw}",
        )
    else:  # the whole provider/model ref in one variable
        primary = _ask_value(answers, draft, "modelPrimary", "Model")
    _ask_list(
        answers,
        draft,
        "modelFallbacks",
        "Fallback models, in order (comma-separated; '-' for none)",
        [m for m in _listed(draft, "modelFallbacks") if m != primary],
    )

    chain = [primary, *_listed(draft, "modelFallbacks")]
    for provider_name, key in settings.KEYED_PROVIDERS.items():
        if any(ref.startswith(f"{provider_name}/") for ref in chain):
            _ask_secret(answers, draft, key, f"{provider_name} API key")


# --- the command -----------------------------------------------------------------------------


def choose_stack(answers: Answers, given: str | None) -> str:
    if given is not None:
        problems = stack_problems(given)
        if problems:
            raise OpsError(problems[0])
        return given
    stack = answers.text("stack", "Stack name", "dev", stack_problems)
    if answers.collected:
        raise OpsError(answers.collected[0])
    return stack


def write(cli: StackCli, draft: Draft, console: Console) -> None:
    """Secrets first: on a passphrase backend they are what fails when the passphrase is unset."""
    stack = draft.stack
    for key, value in sorted(draft.secrets.items()):
        cli.config_set_secret(stack, key, value)
        console.print(f"  stored {key} (secret)")
    for key in sorted(draft.removed):
        cli.config_rm(stack, key)
        console.print(f"  removed {key}")
    for key in ASKED:
        fk = full_key(key)
        if fk not in draft.values or fk in draft.removed:
            continue
        if key in LISTS:
            items = json.loads(draft.values[fk])
            cli.config_set_list(stack, fk, items)
            console.print(f"  set {fk} = {', '.join(items) or '(none)'}")
        else:
            cli.config_set(stack, fk, draft.values[fk])
            console.print(f"  set {fk} = {draft.values[fk]}")


ASKED = (
    "accountId",
    "customDomain",
    "zoneId",
    "workersSubdomain",
    "adminEmails",
    "modelPrimary",
    "modelFallbacks",
)
LISTS = ("adminEmails", "modelFallbacks")

Doctor = Callable[[str, Console], bool]


def run_doctor(stack: str, console: Console, **options: Any) -> bool:
    """The preflight's checks, printed; `options` go to its `run_checks` (test seams)."""
    from . import doctor

    try:
        findings = doctor.run_checks(stack, **options)
    except SystemExit as exc:  # the preflight exits with its sentence when it cannot read config
        console.warn(str(exc))
        return False
    for finding in findings:
        console.print(finding.line())
    return all(f.ok for f in findings)


def run_init(
    cli: StackCli,
    answers: Answers,
    console: Console,
    *,
    stack: str | None = None,
    doctor: Doctor = run_doctor,
) -> int:
    # Before any question: not logged in is the first thing a fresh clone hits.
    user = cli.whoami()
    console.print(f"Pulumi: logged in as {user}")
    name = choose_stack(answers, stack)
    exists = name in cli.stack_names()
    draft = Draft(name)
    if exists:
        draft.values = {k: v for k, v in cli.config(name).items() if k.startswith(f"{NS}:")}
        draft.secret_keys = cli.config_secret_keys(name)
        console.print(f"Stack {name} exists: Enter keeps a current value.")
    ask_all(answers, draft)
    if answers.collected:
        lines = "\n".join(f"  - {p}" for p in answers.collected)
        raise OpsError(
            f"{len(answers.collected)} problem(s) in the answers; nothing was changed:\n{lines}"
        )
    if not exists:
        cli.stack_create(name)
        console.print(f"Created stack {name}.")
    write(cli, draft, console)
    console.print("")
    console.print(f"Preflight (doctor) for {name}:")
    if not doctor(name, console):
        console.print(
            f"The stack is configured; fix the problems above, then `pulumi up --stack {name}`."
        )
        return 1
    console.print(f"Ready: `pulumi up --stack {name}`, then `python -m ops smoke --stack {name}`.")
    return 0


def cmd_init(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    cli = PulumiCli(
        binary=args.pulumi, cwd=Path(args.project_dir), env=deps.env, emit=console.print
    )
    if args.non_interactive:
        answers = Answers(console, env=deps.env)
    else:
        if not sys.stdin.isatty():
            raise OpsError(
                "standard input is not a terminal, so secrets could not be read without echo: "
                "run `python -m ops init` in a terminal, or pass --non-interactive with the "
                'variables in docs/operations.md ("ops init").'
            )
        answers = Answers(console, read_line=input, read_secret=getpass.getpass)
    stack = args.stack or (deps.env.get(ENV["stack"]) if args.non_interactive else None)
    return run_init(cli, answers, console, stack=stack or None, doctor=run_doctor)


def register(commands: Commands) -> None:
    """Adds `init` to the subcommands (`ops.context.Commands`)."""
    init = commands.add_parser(
        "init",
        help="create and configure a stack interactively (or from the environment), then doctor",
        description="Ask for the stack name, Cloudflare account id and API token, workers.dev "
        "subdomain or custom domain, admin emails, model and provider key; check every answer "
        "with the settings loader; store secrets with `pulumi config set --secret` (value on "
        "stdin); then run the preflight. --non-interactive reads the answers from environment "
        f"variables ({', '.join(sorted(set(ENV.values())))}); an unset one keeps the stack's "
        "current value.",
    )
    init.add_argument("--stack", help=f"stack to create or update (default: ask; ${ENV['stack']})")
    init.add_argument(
        "--non-interactive", action="store_true", help="answers from the environment (CI)"
    )
    init.set_defaults(handler=cmd_init)
