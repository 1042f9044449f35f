"""gunicorn's threaded worker, with kept-alive connections shared fairly between the workers.

gunicorn's `gthread` worker keeps a kept-alive connection in the worker process that accepted it,
and accepts up to `worker_connections` (1,000) of them. A client with a pool of persistent
connections (a SaaS back end, wrk) opens them at once; whichever worker wakes first takes most of
them, and from then on one process's interpreter serves most of the load while the others idle
(7 of 8 connections in one of two workers was seen): half the throughput and a long tail.

`BalancedThreadWorker` holds at most one connection per thread, so the next connection waits in the
listen backlog for a worker with a free thread, and a worker that holds connections lets an idler
one accept first.
A worker never makes a waiting client wait for long on a connection it keeps idle: while the backlog
holds a client and the worker has no room, a response it is about to send closes its connection
(`Connection: close`: the client opens another, which the least busy worker takes), and a
kept-alive connection idle in the worker (or one that has sent nothing) is closed first. A new
connection waits for its first bytes in the worker's poller, not in a thread. Nothing else changes:
the same threads, timeouts and graceful stop as `gthread`.
"""

from __future__ import annotations

import contextlib
import errno
import select
import selectors
import time
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

# How often (seconds) a worker with no room looks at the listen backlog while it waits for its
# connections.
BACKLOG_CHECK_SECONDS = 0.05
# A worker holding connections waits this long (seconds) per connection before it accepts a new
# one: every worker watching the listener wakes for a new connection and the first to accept it
# wins, so the least busy worker (an idle one at once) takes it. Only the accepting main thread
# waits (at most ACCEPT_DELAY_MAX); the worker's requests go on meanwhile.
ACCEPT_DELAY_PER_CONNECTION = 0.0005
ACCEPT_DELAY_MAX = 0.002
# A kept-alive connection idle this long (seconds) is closed for a waiting client: the longest a new
# client waits behind idle connections. Never one just answered: its client may be sending the next
# request already, and closing it under that request would lose it.
IDLE_YIELD_SECONDS = 0.5


class BalancedThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker_connections = self.cfg.threads
        self.max_keepalived = self.cfg.threads

    @classmethod
    def check_config(cls, cfg, log):
        """gthread warns when worker_connections leaves no room for kept-alive connections; here
        every held connection may be kept alive."""

    def clients_waiting(self) -> bool:
        """Whether a connection waits in the listen backlog (a listener is readable). poll, not
        select: any file descriptor number."""
        poller = select.poll()
        try:
            for listener in self.sockets:
                poller.register(listener, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return False

    def full(self) -> bool:
        return self.nr_conns >= self.worker_connections

    def accept(self, listener):
        """As gthread accepts, except that a new connection waits for its first bytes in the
        worker's poller, not in a thread: a client that connects and sends nothing holds one of
        the worker's connection places (and yields it, below), never a thread (gthread: 5 s)."""
        if self.nr_conns:
            time.sleep(min(ACCEPT_DELAY_PER_CONNECTION * self.nr_conns, ACCEPT_DELAY_MAX))
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        client_sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            client_sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def handle_request(self, req, conn):
        if self.full() and self.clients_waiting():
            req.must_close = True  # answered with "Connection: close", the client reconnects
        return super().handle_request(req, conn)

    def wait_for_and_dispatch_events(self, timeout):
        if not self._accepting:
            timeout = min(timeout, BACKLOG_CHECK_SECONDS)
        super().wait_for_and_dispatch_events(timeout)
        if not (self.alive and self.full()):
            return
        # The longest idle of the kept-alive connections, then of those that never sent a byte
        # (each deque is in timeout order, and every timeout is set `keepalive` ahead).
        for idle_conns in (self.keepalived_conns, self.pending_conns):
            if idle_conns:
                idle = time.monotonic() - (idle_conns[0].timeout - self.cfg.keepalive)
                if idle >= IDLE_YIELD_SECONDS and self.clients_waiting():
                    self.close_idle_connection(idle_conns)
                    return

    def close_idle_connection(self, idle_conns):
        """Close the longest idle connection of `idle_conns`, making room for a waiting client."""
        conn = idle_conns.popleft()
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()
