"""Child processes the stack owns: own process group, output to a log file, ordered stop."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nobody listens on right now.

    All are bound at once before any is released; one at a time, the kernel may hand out the
    same port twice.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# Looked up once in the parent, so the forked child only makes one foreign call before exec.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)


def _die_with_parent() -> None:
    # Linux only: the child gets SIGTERM when the launcher dies, even by SIGKILL, so a crashed
    # `make dev` never leaves a gateway or a browser holding ports. The runtime answers SIGTERM
    # with a final snapshot, like a Ctrl-C.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One long-running process, started in its own session so a Ctrl-C reaches only us."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float) -> int | None:
        """SIGTERM to the process, SIGKILL to its whole group after `grace` seconds."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        # Helpers it spawned in its group (the gateway's tools, workerd) must not outlive it.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode

    def kill_tree(self) -> None:
        """SIGKILL the process and every descendant at once, as a crashed machine would."""
        if self.proc is None:
            return
        for pid in reversed(process_tree(self.proc.pid)):
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    result, todo = [], [root]
    while todo:
        pid = todo.pop()
        result.append(pid)
        todo.extend(children.get(pid, []))
    return result


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Child | None = None,
    interval: float = 0.2,
) -> float:
    """Poll `check` until true; return the seconds it took. Fails fast if `alive` exits."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if alive is not None and not alive.running():
            raise ChildExited(alive)
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(interval)


class ChildExited(Exception):
    def __init__(self, child: Child) -> None:
        super().__init__(
            f"{child.name} exited with {child.returncode()}; its log ({child.log_path}) ends "
            f"with:\n{child.log_tail()}"
        )
        self.child = child
