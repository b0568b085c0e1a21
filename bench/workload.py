"""The peers' workload (bench/wrk/workload.lua) against one started configuration: measured runs
with their CPU time per 1,000 requests, the warm-up, and reconnecting after a database reset."""

from __future__ import annotations

import http.client
import resource
from typing import Any

from bench.configs import Config
from bench.measure import cpu_seconds, total_cpu_seconds, wait_idle, wrk
from bench.paths import SCRIPTS
from bench.procs import App
from bench.session import Session
from restengine.ops.dbserver import HOST

LUA = SCRIPTS / "workload.lua"
TAGS = "fiction,history,science,poetry,travel,classic,mystery,fantasy"
WARM_SECONDS = 1  # per read workload, at every start of an app
KINDS = {"expand": "list", "deep1": "item", "deep500": "item"}  # workload.lua's WL_KIND, where not the workload


def run_wrk(session: Session, config: Config, workload: str, port: int, connections: int,
            seconds: int) -> dict[str, Any]:  # fmt: skip
    """One wrk run of ``workload``; wrk's figures and ``cpu_loadgen``, the CPU seconds wrk itself used."""
    data = session.data
    env = {"WL_IDS": str(data.ids), "WL_AUTHORS": str(data.authors), "WL_TAGS": TAGS,
           "WL_ITEM": config.item, "WL_CREATE": config.create, "WL_NONCE": str(session.nonce()),
           "WL_LIST": config.expand if workload == "expand" else config.list,
           "WL_KIND": KINDS.get(workload, workload), "WL_AUTH": f"Bearer {data.writer_key}"}  # fmt: skip
    if config.body:
        env["WL_BODY"] = config.body
    if workload.startswith("deep") and config.deep:
        env["WL_ITEM"] = config.deep[0] if workload == "deep1" else config.deep[1]
        env["WL_IDS"] = str(data.one)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = wrk(port, connections=connections, seconds=seconds, threads=min(2, connections), script=LUA, env=env,
                 timeout="5s")  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_loadgen"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def measure(session: Session, config: Config, app: App, workload: str, connections: int,
            seconds: int) -> dict[str, Any]:  # fmt: skip
    """One wrk run, started on an idle system: wrk's figures, CPU seconds per 1,000 requests of the
    app, of each shared process and of wrk (``cpu_<name>_per_1k``), and what was run.

    CPU is counted over the run itself: what the processes spend after it on requests wrk gave
    up on is not the cost of the requests it counted (and a database reset may cut it short).
    """
    infra = session.infra

    def cpu() -> dict[str, float]:
        return {"app": total_cpu_seconds(p.pid for p in app.procs),
                **{name: cpu_seconds(p.pid) for name, p in infra.items() if p.pid}}  # fmt: skip

    with session.phases.time("drain"):  # the previous run's abandoned requests may still be running
        wait_idle(p.pid for p in [*app.procs, *infra.values()])
    start = cpu()
    with session.phases.time("wrk"):
        result = run_wrk(session, config, workload, app.port, connections, seconds)
    end = cpu()
    per_k = 1000 / max(result["requests"], 1)
    result.update({f"cpu_{k}_per_1k": (end[k] - start[k]) * per_k for k in start})
    result["cpu_loadgen_per_1k"] = result.pop("cpu_loadgen") * per_k
    result.update(config=config.name, workload=workload, connections=connections)
    return result


def warm(session: Session, config: Config, port: int) -> None:
    """A short run of each read workload, so caches and pools are warm before measuring.

    One second at 16 connections is hundreds of requests wherever the database is not the
    bottleneck: every worker's connections are open and every tag's first page is cached.
    """
    for workload in ("item", "list"):
        if workload in config.workloads:
            run_wrk(session, config, workload, port, 16, WARM_SECONDS)


def reconnect(session: Session, config: Config, port: int) -> None:
    """A few untimed GETs after a database reset, so drivers replace their dead pooled connections."""
    for book in session.data.ids.read_text().split()[:20]:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            conn.request("GET", config.item.replace("{id}", book))
            conn.getresponse().read()
        except OSError:
            pass
        finally:
            conn.close()
