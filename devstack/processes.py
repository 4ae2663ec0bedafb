"""Background processes the local stack starts, and stopping exactly those.

Each process gets a pid file (``<directory>/<name>.pid``: the pid and a marker that must appear
in its command line), written as soon as it starts, so ``local down`` finds everything even
after a crash halfway through ``local up``. A pid is only signalled while its command line still
shows the marker (where the system lets us read it), so a pid the system gave to another
program since is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Recorded:
    name: str
    pid: int
    marker: str


def spawn(
    arguments: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    environment: Mapping[str, str] | None = None,
    stdout: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``arguments`` in a session of its own (a terminal's Ctrl-C never reaches it), stdin
    closed, output appended to ``log_path`` (stdout too unless ``stdout`` is given)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(arguments),
            cwd=cwd,
            env=None if environment is None else dict(environment),
            stdin=subprocess.DEVNULL,
            stdout=log if stdout is None else stdout,
            stderr=log,
            start_new_session=True,
        )


def record(directory: Path, name: str, pid: int, marker: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.pid").write_text(
        json.dumps({"pid": pid, "marker": marker}), encoding="utf-8"
    )


def recorded(directory: Path) -> list[Recorded]:
    found = []
    for path in sorted(directory.glob("*.pid")) if directory.exists() else []:
        document = json.loads(path.read_text(encoding="utf-8"))
        found.append(Recorded(path.stem, int(document["pid"]), str(document["marker"])))
    return found


def forget(directory: Path, name: str) -> None:
    (directory / f"{name}.pid").unlink(missing_ok=True)


def is_running(pid: int, marker: str) -> bool:
    """``pid`` is alive (not a zombie) and, where readable, its command line shows ``marker``."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not one of ours
    proc = Path("/proc") / str(pid)
    if not proc.exists():
        return True  # no /proc (macOS): the pid is all we can check
    try:
        if (proc / "stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return marker in command


def stop(pid: int, marker: str, *, signum: int = signal.SIGTERM, timeout_s: float = 15) -> bool:
    """Signal ``pid`` and wait for it to end, killing it after ``timeout_s``; False if it was
    not running (or not ours)."""
    if not is_running(pid, marker):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_running(pid, marker):
            return True
        time.sleep(POLL_S)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while is_running(pid, marker):
        time.sleep(POLL_S)
    return True
