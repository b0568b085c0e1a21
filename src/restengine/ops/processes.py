"""Starting and stopping the local server processes RestEngine runs beside itself.

Every process is started in its own session (so a Ctrl-C aimed at the
terminal reaches only ``restengine up``, which then stops its children in
order) and is stopped by its PID: a polite signal, a bounded wait, then
SIGKILL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class ProcessError(RuntimeError):
    """A managed process could not be started or did not become ready."""


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for tests and throwaway servers)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Managed:
    """One child process: how to start it, how to stop it, how to tell it is ready."""

    name: str
    argv: Sequence[str]
    log_path: Path
    ready: Callable[[], bool]
    stop_signal: int = signal.SIGTERM
    env: dict[str, str] | None = None
    cwd: Path | None = None
    ready_timeout: float = 60.0
    stop_timeout: float = 20.0
    proc: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        log.info("starting %s: %s", self.name, " ".join(self.argv))
        self.proc = subprocess.Popen(
            list(self.argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessError(f"{self.name} exited with status {self.returncode()}; see {self.log_path}")
            if self.ready():
                return
            time.sleep(0.1)
        self.stop()
        raise ProcessError(f"{self.name} not ready after {self.ready_timeout:.0f}s; see {self.log_path}")

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self) -> None:
        """Signal the process, wait up to ``stop_timeout``, then SIGKILL it."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            log.info("stopping %s (pid %d)", self.name, proc.pid)
            try:
                proc.send_signal(self.stop_signal)
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) did not stop in %.0fs; killing it", self.name, proc.pid, self.stop_timeout)
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        if proc is not None:
            self._kill_group(proc.pid)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @staticmethod
    def _kill_group(pgid: int, grace: float = 1.0) -> None:
        """End what is left of the process group (e.g. workers orphaned by a killed master).

        SIGTERM first, so a gunicorn worker finishes the responses it is writing:
        nginx cannot retry a GET whose response headers already reached the
        client, so a worker killed mid-response loses that GET. SIGKILL after
        ``grace`` seconds, not later: a terminating worker no longer reads its
        idle keep-alive connections, so a request nginx sends on one waits
        until the socket closes (then nginx retries it on another instance).
        """
        if Path("/proc/self/stat").exists():  # Linux: wait for the group to drain
            if not _live_members(pgid):
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _live_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _live_members(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (zombies, waiting to be reaped, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def which(name: str, extra_dirs: Sequence[Path] = ()) -> str | None:
    """Find an executable on PATH, or in ``extra_dirs`` (e.g. this venv's bin)."""
    import shutil

    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None
