"""One workflow run per ``output_dir``: a lock file inside it.

Snakemake's own lock lives in the working directory's ``.snakemake/``, so two
runs started from different folders on one ``output_dir`` do not see each
other and overwrite each other's files. The workflow takes
``{output_dir}/.sarstack.lock`` when it starts executing jobs and removes it
when it ends (success or error). A lock whose process is gone (killed run,
reboot) is stale and taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from sarstack.errors import SarstackError

LOCK_NAME = ".sarstack.lock"


def lock_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / LOCK_NAME


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable or half written: judged stale below
    return data if isinstance(data, dict) else {}


def _alive(info: dict[str, Any]) -> bool:
    """Whether the run that wrote ``info`` may still be running.

    Another host's run cannot be checked from here: it counts as alive. On
    this host the process must exist and, where ``/proc`` tells, still be a
    Snakemake (a pid reused by another program after a reboot is stale).
    """
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if info.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    # Empty while a process is still being exec'd (or a zombie): cannot tell, so alive.
    return not cmdline or b"snakemake" in cmdline


def acquire(out_dir: str | Path) -> Path:
    """Take ``{out_dir}/.sarstack.lock`` for this process; a stale one is taken over.

    Raises
    ------
    SarstackError
        One line naming the lock file and the run holding it.
    """
    path = lock_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "cwd": os.getcwd(),
          "started": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            info = _read(path)
            if info is None:
                continue  # released meanwhile: try again
            if info.get("pid") == me["pid"] and info.get("host") == me["host"]:
                return path  # ours already
            if _alive(info):
                raise SarstackError(
                    f"{path}: output_dir is in use by another run (pid {info.get('pid')} on "
                    f"{info.get('host')}, started {info.get('started')} from "
                    f"{info.get('cwd')}); wait for it, or delete the file if no run is active"
                ) from None
            path.unlink(missing_ok=True)  # stale: its run is gone
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise SarstackError(f"{path}: could not take the lock (another run races for it)")


def release(out_dir: str | Path) -> None:
    """Remove the lock if this process holds it (a no-op otherwise)."""
    path = lock_path(out_dir)
    info = _read(path)
    if info and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
