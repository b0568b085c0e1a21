"""``restengine up`` started for a test, on free loopback ports, and stopped (by SIGINT, as a user would)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from restengine.ops.processes import free_port
from tests.e2e.helpers import wait_for


@dataclass
class UpStack:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    ports: dict[str, int]
    output: Path

    @property
    def http(self) -> int:
        return self.ports["http"]

    def pids(self) -> dict[str, int]:
        return json.loads((self.data_dir / "run" / "pids.json").read_text())

    def all_ports(self) -> list[int]:
        return [self.ports["db"], self.ports["redis"], self.ports["http"], *self.ports["instances"]]  # type: ignore[list-item]


def start_up(tmp_path: Path, **extra: str) -> UpStack:
    """``restengine up`` on free loopback ports in ``tmp_path``, ready; ``extra`` added to its environment."""
    ports = {"db": free_port(), "redis": free_port(), "http": free_port(), "instances": [free_port(), free_port()]}
    env = {
        **os.environ,
        "RESTENGINE_DATA_DIR": str(tmp_path / "var"),
        "RESTENGINE_DB_PORT": str(ports["db"]),
        "RESTENGINE_REDIS_PORT": str(ports["redis"]),
        "RESTENGINE_HTTP_PORT": str(ports["http"]),
        "RESTENGINE_INSTANCE_PORTS": ",".join(map(str, ports["instances"])),  # type: ignore[call-overload]
        "RESTENGINE_WORKERS": "2",
        **extra,
    }
    for key in ("MONGODB_URI", "REDIS_URL"):
        env.pop(key, None)
    output = tmp_path / "up.log"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "restengine.ops.cli", "up", "--no-progress"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    stack = UpStack(proc, tmp_path / "var", ports, output)  # type: ignore[arg-type]
    try:
        wait_for(lambda: b"RestEngine is up" in output.read_bytes() or proc.poll() is not None, 180, "up to start")
        assert proc.poll() is None, output.read_text()
    except BaseException:
        stop_up(stack)
        raise
    return stack


def stop_up(stack: UpStack) -> None:
    if stack.proc.poll() is None:
        stack.proc.send_signal(signal.SIGINT)
        try:
            stack.proc.wait(90)
        except subprocess.TimeoutExpired:
            stack.proc.kill()
            stack.proc.wait()
