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
connection waits for its first bytes in the worker's poller, not in a thread.
Since every connection the worker holds has a thread to itself, a kept-alive connection waits for
its next request in that thread (`handle`), not in the worker's poller: the request is read by the
thread that wakes up, instead of the main thread waking, handing the connection to the thread pool
and the pool waking a thread (more than half of gthread's own CPU per request: 253 -> 117 us on an
app that answers a constant). The
thread gives the connection back as gthread would, after `keepalive` seconds idle, for a waiting
client after IDLE_YIELD_SECONDS idle, or when the worker stops. Nothing else changes: the same
threads, timeouts and graceful stop as `gthread`.
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
# How often (seconds) a thread waiting on its idle kept-alive connection looks at the worker's state
# (stopping, full with clients waiting).
IDLE_CHECK_SECONDS = 0.05
READY, GIVE_BACK, CLOSE = "ready", "give back", "close"
# A worker with no room closes a connection for a client in the listen backlog only once it has
# seen a client waiting there this long (seconds): a worker with room usually accepts the client
# within its accept delay and a switch of the interpreter lock (5 ms), and closing connections for a
# client about to be accepted elsewhere sends their clients to the backlog in turn (seen: every
# response of both workers closing its connection, over and over).
BACKLOG_PATIENCE_SECONDS = 0.01


class BalancedThreadWorker(ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker_connections = self.cfg.threads
        self.max_keepalived = self.cfg.threads
        self.backlog_seen_at: float | None = None  # since when a client waits (see below)

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

    def handle(self, conn):
        """gthread's `handle`, then the connection's next requests in the same thread while it
        is kept alive (see the module's docstring); the result goes back to the main thread as
        gthread's does (False: close the connection)."""
        result = super().handle(conn)
        while result is True and self.alive:
            waited = self.wait_for_next_request(conn)
            if waited is not READY:
                return waited is GIVE_BACK
            result = super().handle(conn)
        return result

    def wait_for_next_request(self, conn):
        """Wait in this thread for the next request on a kept-alive connection: READY when its
        bytes are there; GIVE_BACK when the worker stops (gthread's own stop applies to the
        connection); CLOSE when it has been idle `keepalive` seconds, or IDLE_YIELD_SECONDS
        with the worker full and a client waiting in the listen backlog."""
        if conn.parser.unreader.buf.getvalue():  # read ahead already (a pipelined request)
            return READY
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN | select.POLLPRI)
        idle_since = time.monotonic()
        while self.alive:
            if poller.poll(IDLE_CHECK_SECONDS * 1000):
                return READY
            idle = time.monotonic() - idle_since
            if idle >= self.cfg.keepalive or (
                idle >= IDLE_YIELD_SECONDS and self.full() and self.clients_waiting()
            ):
                return CLOSE
        return GIVE_BACK

    def client_kept_waiting(self) -> bool:
        """Whether the worker has no room and a client has waited in the listen backlog for
        BACKLOG_PATIENCE_SECONDS at least (as far as this worker's checks saw: the backlog was
        never seen empty since)."""
        if not (self.full() and self.clients_waiting()):
            self.backlog_seen_at = None
            return False
        now = time.monotonic()
        if self.backlog_seen_at is None:
            self.backlog_seen_at = now
        return now - self.backlog_seen_at >= BACKLOG_PATIENCE_SECONDS

    def handle_request(self, req, conn):
        if self.client_kept_waiting():
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
