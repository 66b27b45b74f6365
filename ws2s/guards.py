"""What the workflow checks about where it runs, beside its config: that the `ws2s` command its
rules call is there, and that no other run works in the same directory.

One run a directory: Snakemake 9.27.1 locks a run's inputs and outputs with files in
`.snakemake/locks/`, but every run, when it ends, removes that whole folder
(`snakemake/persistence/file.py`, `_delete_locks`: `shutil.rmtree(self._lockdir)`), the lock
files of runs still going included. After any other run ends (a refused one, `--unlock`, a run
of other targets), a second run on the directory starts unhindered and can build the same
output as the first at the same time (both staged in the same `.NAME.tmp` folder). So the
workflow holds a lock of its own, an flock on `.snakemake/ws2s-run.lock`, for its whole run:
the kernel drops it when the process ends, however it ends, so it is never left stale.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from ws2s.errors import Ws2sError

LOCK_NAME = "ws2s-run.lock"
_held: list = []  # this process's open lock file: closing it, or the process ending, releases the lock


def hold_run_lock(state_dir: str | Path) -> str | None:
    """Take the run lock in `state_dir` (Snakemake's `.snakemake`) for as long as this process
    lives. Another process holding it is an error naming that process; a file system without
    locks gives a note (returned) and no lock."""
    if _held:
        return None
    path = Path(state_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            handle.close()
            return (f"{path}: this file system refuses locks ({os.strerror(err.errno)}); a second run on this "
                    "directory would not be refused, so start one run at a time")
        handle.seek(0)
        holder = handle.read().strip() or "a process"
        handle.close()
        raise Ws2sError(f"another run of this workflow is working in {path.parent.parent} ({holder}); a second "
                        "run would build the same outputs at the same time: wait for it to end (a dry run, -n, is "
                        "fine meanwhile)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    _held.append(handle)
    return None


def ws2s_command(conda: bool) -> str | None:
    """Can the rules run `ws2s`? Under conda each rule's environment installs it. Otherwise it
    must be on PATH; if it is not, but the Python running Snakemake has it beside it (the
    virtual environment of `.venv/bin/snakemake`, not activated), PATH is extended with that
    folder and a note returned. Failing both: an error with the fix, instead of every rule
    failing with exit 127."""
    if conda or shutil.which("ws2s"):
        return None
    here = Path(sys.executable).parent
    if os.access(here / "ws2s", os.X_OK):
        os.environ["PATH"] = f"{here}{os.pathsep}{os.environ.get('PATH', '')}"
        activate = f" (`. {here / 'activate'}` puts it there)" if (here / "activate").is_file() else ""
        return f"ws2s is not on PATH: the rules call {here / 'ws2s'}, beside the Python running Snakemake{activate}"
    raise Ws2sError(f"the rules call `ws2s`, which is not on PATH (each would fail with exit 127): activate the "
                    "environment ws2s is installed in (`. .venv/bin/activate`), or install ws2s into the Python "
                    f"running Snakemake ({sys.executable} -m pip install -e .)")
