"""CPU time of the local servers (broker, ClickHouse) over a span of the bench.

On a 2-core machine the broker and ClickHouse share the cores with the workers, so what
they spend per event is part of what limits the pipeline. Their processes are found by the
port they listen on (``/proc/net/tcp`` gives the socket's inode, ``/proc/PID/fd`` the process
holding it): only local servers of this user are found, and the figures are None otherwise.
They are shared servers: whatever else uses them at the time is counted too.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.figures import us_per_event
from chaos.harness import process_cpu_seconds
from chaos.servers import Servers

LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


def listening_inodes(table: str, port: int) -> set[str]:
    """Inodes of the sockets listening on ``port`` in a /proc/net/tcp table.

    >>> row = "   0: 0100007F:4A94 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
    >>> listening_inodes("header\\n" + row + "     0        0 123456 1", 19092)
    {'123456'}
    """
    inodes = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].split(":")[1], 16) == port:
            inodes.add(fields[9])
    return inodes


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` on this machine, if it can be seen."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            inodes |= listening_inodes(Path(table).read_text("ascii"), port)
        except OSError:
            continue
    sockets = {f"socket:[{inode}]" for inode in inodes}
    if not sockets:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in sockets for fd in fds):
                return int(pid)
        except OSError:
            continue
    return None


def server_pids(servers: Servers) -> dict[str, int | None]:
    broker_port = int(servers.bootstrap_servers[0].rsplit(":", 1)[1])
    clickhouse_port = urlsplit(servers.clickhouse_url).port or 9000
    return {"broker": listening_pid(broker_port), "clickhouse": listening_pid(clickhouse_port)}


class CpuSpan:
    """CPU seconds each server spent since the span began."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.start = {name: _cpu(pid) for name, pid in pids.items()}

    def seconds(self) -> dict[str, float | None]:
        return {
            name: None if pid is None else _cpu(pid) - self.start[name]
            for name, pid in self.pids.items()
        }


def _cpu(pid: int | None) -> float:
    return process_cpu_seconds(pid) if pid is not None else 0.0


def per_event(seconds: dict[str, float | None], events: int) -> dict[str, float | None]:
    """``<server>_cpu_us_per_event`` for each server (None where it was not found).

    >>> per_event({"broker": 1.5, "clickhouse": None}, 10_000)
    {'broker_cpu_us_per_event': 150.0, 'clickhouse_cpu_us_per_event': None}
    """
    return {
        f"{name}_cpu_us_per_event": None if s is None else us_per_event(s, events)
        for name, s in seconds.items()
    }
