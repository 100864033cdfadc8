"""A Redis primary, its replica and three Sentinels on loopback, all real servers from the same
`redis-server` binary (`--sentinel`): for the failover test (tests/test_failover.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import redis

from dev.redis_server import RedisServer, die_with_parent, free_port
from tests.waiting import wait_until

SERVICE = "chatbot"
DOWN_AFTER_MS = 1000  # a primary silent this long is down for a Sentinel (production: 5-30 s)


class SentinelSet:
    def __init__(self) -> None:
        # The first full sync to the replica starts at once (Redis waits 5 s for more replicas).
        self.primary = RedisServer(extra_args=("--repl-diskless-sync-delay", "0"))
        self.replica: RedisServer | None = None
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.dir = Path(tempfile.mkdtemp(prefix="chatbot-sentinels-"))
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> SentinelSet:
        self.primary.start()
        self.replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(self.primary.port))).start()
        replica = redis.Redis(port=self.replica.port, socket_timeout=2)
        assert wait_until(lambda: replica.info("replication").get("master_link_status") == "up", 10)
        # Each Sentinel is told its id, the replica and the other Sentinels up front, as a
        # Sentinel's own config file records them once it has found them (INFO every 10 s,
        # hellos every 2 s): ready in a moment instead of ~7 s.
        ids = [f"{n + 1:040x}" for n in range(len(self.sentinel_ports))]
        for n, port in enumerate(self.sentinel_ports):
            config = self.dir / f"sentinel-{n}.conf"  # a Sentinel rewrites its own config file
            others = "".join(
                f"sentinel known-sentinel {SERVICE} 127.0.0.1 {other} {ids[m]}\n"
                for m, other in enumerate(self.sentinel_ports)
                if m != n
            )
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\nsentinel myid {ids[n]}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
                f"sentinel known-replica {SERVICE} 127.0.0.1 {self.replica.port}\n{others}"
            )
            log = open(self.dir / f"sentinel-{n}.log", "ab")  # noqa: SIM115
            self.sentinels.append(
                subprocess.Popen(
                    [self.primary.binary, str(config), "--sentinel"],
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            )
        # Ready when every Sentinel knows the replica and the two other Sentinels (their hellos
        # come every 2 s): a failover needs the quorum and a replica to promote.
        assert wait_until(self._ready, timeout=20), "the Sentinels did not find each other"
        return self

    def _ready(self) -> bool:
        for port in self.sentinel_ports:
            try:
                sentinel = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
                master: Any = sentinel.sentinel_master(SERVICE)
                if int(master["num-other-sentinels"]) < 2 or int(master["num-slaves"]) < 1:
                    return False
            except (redis.RedisError, OSError, KeyError):
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port, as the Sentinels see it now."""
        sentinel = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
        address: Any = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        return int(address[1])

    def kill_primary(self) -> None:
        """The primary's host dies: SIGKILL, nothing flushed, nothing said to anyone."""
        assert self.primary.process is not None
        os.kill(self.primary.process.pid, signal.SIGKILL)
        self.primary.process.wait()

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                process.terminate()
                process.wait(5)
        if self.replica:
            self.replica.stop()
        self.primary.stop()
