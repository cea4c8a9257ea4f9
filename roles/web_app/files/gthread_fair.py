"""gunicorn's threaded worker, accepting new connections only while it has room to serve them.

gunicorn's workers all accept from one listening socket, and the worker that happens to be
awake when a burst of connections arrives takes most of them: 16/0 and 15/1 splits of 16
keep-alive connections are common on two workers. That worker then queues requests behind
its own threads and interpreter lock while the other idles, which doubles the tail latency.

This worker stops accepting while its busy connections (requests running or queued for its
threads) reach ``max_busy`` (twice its threads), so the others take the rest. Idle
kept-alive connections do not count: gunicorn's own ``worker_connections`` cap counts them,
and behind nginx's upstream keepalive pool a worker full of idle connections accepts nothing
until nginx gives up (504). A worker at the limit still serves requests on the connections it
holds; only new connections wait, in the kernel's listen queue, for the first worker with room.

Used as ``worker_class = "gthread_fair.ThreadWorker"`` from the directory holding this file.
"""

from gunicorn.workers import gthread


class ThreadWorker(gthread.ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_busy = 2 * self.cfg.threads

    def busy_connections(self) -> int:
        """Connections with a request running or queued for a thread."""
        return self.nr_conns - len(self.keepalived_conns) - len(self.pending_conns)

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.busy_connections() < self.max_busy)

    def is_parent_alive(self) -> bool:
        # gunicorn's loop leaves without clearing ``alive`` when the master is gone; the
        # check below would then accept again while the worker finishes its requests.
        alive = super().is_parent_alive()
        if not alive:
            self.alive = False
        return alive

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # gunicorn's loop re-decides accepting only when its own cap is crossed; decide
        # again before every wait, as the busy count changes with every request.
        if self.alive:
            self.set_accept_enabled(self.nr_conns < self.worker_connections)
        super().wait_for_and_dispatch_events(timeout)
