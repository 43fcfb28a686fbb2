"""A stand-in `pulumi` executable: records every call and keeps stacks in a JSON file.

Written to a temporary bin directory by `install_fake_pulumi`; each call appends
{"argv": [...], "stdin": "...", "rehearsed": $MOLT_OPENCLAW_REHEARSED} to $FAKE_PULUMI_LOG, so
a test can assert what reached the command line, standard input and that variable. It answers
the commands `ops init`, `ops upgrade` and the preflight run, the way the real CLI does for
them (JSON shapes of `pulumi config --json`,
`config set` reading a value missing from the command line from a non-terminal stdin and
dropping one trailing newline, `config rm` of an absent key succeeding). Anything else exits 2,
so a new command cannot pass unnoticed.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, NoReturn

SCRIPT = Path(__file__).resolve()


def install_fake_pulumi(bin_dir: Path, state: dict[str, Any]) -> tuple[Path, Path, Path]:
    """(executable, state file, log file); `state` is {"user": str|None, "stacks": {...}}."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "pulumi"
    exe.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(SCRIPT)!r})\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    state_file, log_file = bin_dir / "pulumi-state.json", bin_dir / "pulumi-calls.jsonl"
    state_file.write_text(json.dumps(state))
    log_file.write_text("")
    return exe, state_file, log_file


def read_calls(log_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_file.read_text().splitlines() if line]


def _fail(message: str, code: int = 255) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _take(args: list[str], flag: str) -> str | None:
    if flag in args:
        i = args.index(flag)
        value = args[i + 1]
        del args[i : i + 2]
        return value
    return None


def _flag(args: list[str], flag: str) -> bool:
    if flag in args:
        args.remove(flag)
        return True
    return False


def _entries(config: dict[str, Any], show_secrets: bool) -> dict[str, Any]:
    out = {}
    for key, entry in config.items():
        value, secret = entry["value"], entry["secret"]
        shown: dict[str, Any] = {"secret": secret}
        if secret and not show_secrets:
            shown["value"] = "[secret]"
        elif isinstance(value, list):
            shown["value"] = json.dumps(value)
            shown["objectValue"] = value
        else:
            shown["value"] = value
        out[key] = shown
    return out


def main() -> None:
    argv = sys.argv[1:]
    stdin = "" if sys.stdin.isatty() else sys.stdin.read()
    with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
        rehearsed = os.environ.get("MOLT_OPENCLAW_REHEARSED")
        log.write(json.dumps({"argv": argv, "stdin": stdin, "rehearsed": rehearsed}) + "\n")
    state_file = Path(os.environ["FAKE_PULUMI_STATE"])
    state = json.loads(state_file.read_text())
    args = list(argv)
    _flag(args, "--non-interactive")
    _take(args, "--cwd")
    stack_name = _take(args, "--stack")
    stacks: dict[str, Any] = state["stacks"]

    def stack() -> dict[str, Any]:
        if stack_name is None or stack_name not in stacks:
            _fail(f"no stack named '{stack_name}' found")
        return stacks[stack_name]

    if args == ["whoami"]:
        if not state.get("user"):
            _fail("PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions")
        print(state["user"])
    elif args == ["stack", "ls", "--json"]:
        print(json.dumps([{"name": name} for name in stacks]))
    elif args[:2] == ["stack", "init"] and len(args) == 3:
        if state.get("passphrase_required") and not (
            os.environ.get("PULUMI_CONFIG_PASSPHRASE")
            or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        ):
            _fail("passphrase must be set with PULUMI_CONFIG_PASSPHRASE or ..._FILE")
        # A Pulumi.<stack>.yaml already in the checkout becomes the new stack's config.
        stacks[args[2]] = {"config": state.get("files", {}).get(args[2], {}), "outputs": {}}
    elif args[:1] == ["config"] and _flag(args, "--json"):
        show = _flag(args, "--show-secrets")
        if args != ["config"]:
            _fail(f"unexpected {argv}", 2)
        print(json.dumps(_entries(stack()["config"], show)))
    elif args[:2] == ["config", "set"]:
        secret, path = _flag(args, "--secret"), _flag(args, "--path")
        rest = args[2:]
        if len(rest) == 1:
            value = stdin[:-1] if stdin.endswith("\n") else stdin
        elif len(rest) == 2:
            value = rest[1]
        else:
            _fail(f"unexpected {argv}", 2)
        key = rest[0]
        config = stack()["config"]
        match = re.fullmatch(r"(.+)\[(\d+)\]", key) if path else None
        if match:
            items = config.setdefault(match.group(1), {"value": [], "secret": False})["value"]
            index = int(match.group(2))
            if index > len(items):
                _fail(f"index {index} out of range")
            items[index : index + 1] = [value]
        else:
            config[key] = {"value": value, "secret": secret}
    elif args[:2] == ["config", "rm"] and len(args) == 3:
        stack()["config"].pop(args[2], None)
    elif args[:2] == ["stack", "export"]:
        _fail("no deployment for this stack")
    elif args[:3] == ["stack", "output", "--json"]:
        print(json.dumps(stack().get("outputs", {})))
    elif args[:1] == ["up"]:
        up = stack()
        up.setdefault("ups", []).append({k: e["value"] for k, e in up["config"].items()})
        print("Updating (fake)")
    else:
        _fail(f"unexpected {argv}", 2)
    state_file.write_text(json.dumps(state))


if __name__ == "__main__" or __name__ == "<run_path>":
    main()
