"""Dropping the shared cluster client after a failed command (cache.py's
_drop_cluster_client, as a failover makes the app do) must not break a command another
thread is running on that client at that moment: the page loop and readiness share it.
Before the fix the old client was closed, which closed the other thread's connection under
its read (AttributeError inside redis-py: a 500 during a failover in CI).

Against a real one-shard Valkey cluster with TLS and AUTH (tests/servers/redis.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.integration.app.conftest import ini

KEY = "cachestack:{slow_version}:drop-test"


def test_a_command_in_flight_survives_the_shared_client_being_dropped(
    app_db: Any, redis_cluster: Any, make_app: Any
) -> None:
    # A socket timeout well above the BLPOP's wait, so only a closed connection fails it.
    app, _client = make_app(
        ini(app_db, redis_cluster, cluster=True, redis_extra={"socket_timeout": 5})
    )
    cache = app.cache
    shared = cache._shared_client()
    shared.delete(KEY)
    outcome: dict[str, Any] = {}

    def blocked_read() -> None:
        # A command that holds its connection for a second, as a slow reply would.
        try:
            outcome["reply"] = shared.execute_command("BLPOP", KEY, 1)
        except Exception as exc:  # the test reports it below
            outcome["error"] = f"{exc.__class__.__name__}: {exc}"

    reader = threading.Thread(target=blocked_read, daemon=True)
    reader.start()
    time.sleep(0.3)  # the BLPOP is on the wire, waiting for its reply
    cache._drop_cluster_client()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert outcome == {"reply": None}, outcome  # BLPOP's timeout, not a broken connection
    # The next command makes a new client and works.
    assert cache._shared_client() is not shared
    assert cache._shared_client().ping()
