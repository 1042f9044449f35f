"""The product's gunicorn worker (`config.gunicorn_worker.BalancedThreadWorker`), run as a real
gunicorn server with real sockets: kept-alive connections are shared between the workers, every
client is served when there are more clients than threads, an idle kept-alive connection makes room
for a waiting client, and no request is lost to a connection closed under it.

The application is tests/serving/pid_app.py (it answers with the serving process's id), so what is
checked is the worker, not Django.
"""

from __future__ import annotations

import http.client
import importlib
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager

import requests

from tests.processes import BASE_DIR, free_port, stop_process, wait_until

WORKER = "config.gunicorn_worker.BalancedThreadWorker"


@contextmanager
def gunicorn(
    workers: int,
    threads: int,
    keepalive: int = 30,
    worker_class: str = WORKER,
    app: str = "tests.serving.pid_app:app",
    processes: list | None = None,
):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", worker_class, "-w", str(workers), "--threads", str(threads),
         "--keep-alive", str(keepalive), "-b", f"127.0.0.1:{port}", "--no-control-socket", app],
        cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    if processes is not None:
        processes.append(proc)
    try:
        wait_until(lambda: _answers(port), timeout=30, what="gunicorn")
        if app.startswith("tests.serving.pid_app"):
            # Every worker is up (the arbiter forks them one by one): each has answered once.
            wait_until(lambda: len({_pid(port) for _ in range(20)}) == workers, timeout=30, what="workers")
        yield port
    finally:
        stop_process(proc)


def run_clients(client, count: int, *, seconds: float, stop: threading.Event) -> None:
    """`client(index)` in `count` threads for `seconds`, then `stop` is set and they are joined."""
    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _pid(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/", timeout=5).text


def test_the_product_serves_with_the_balanced_worker(monkeypatch):
    monkeypatch.delenv("WEB_WORKER_CLASS", raising=False)
    config = importlib.reload(importlib.import_module("config.gunicorn"))
    assert config.worker_class == WORKER
    assert (config.workers, config.threads) == (2, 4)


def test_kept_alive_connections_are_shared_between_the_workers():
    """8 persistent connections opened at once against 2 workers x 4 threads: each worker serves 4 of
    them (gthread would keep as many as it accepted, 7 of 8 in one worker has been seen)."""
    with gunicorn(workers=2, threads=4) as port:
        barrier = threading.Barrier(8)
        stop = threading.Event()
        served_by: dict[int, list[str]] = {}
        errors: list[BaseException] = []

        def client(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                barrier.wait()
                time.sleep(0.05 * index)  # they arrive one by one, while the first are served
                pids = served_by.setdefault(index, [])
                while not stop.is_set():
                    connection.request("GET", "/")
                    response = connection.getresponse()
                    pids.append(response.read().decode())
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        # All 8 connected, then a while of load on all of them.
        run_clients(client, 8, seconds=0.05 * 8 + 1.5, stop=stop)

        assert not errors, errors
        # Once settled (the first answers may come before the other worker took its share), each
        # connection stays with one worker, and each worker holds 4 connections.
        settled = {index: set(pids[-10:]) for index, pids in served_by.items()}
        assert all(len(pids) == 1 for pids in settled.values()), settled
        per_worker = Counter(next(iter(pids)) for pids in settled.values())
        assert sorted(per_worker.values()) == [4, 4], per_worker


def test_a_new_connection_goes_to_the_least_busy_worker():
    """Connections opened one after another (each answered before the next opens), against 2 workers
    x 4 threads: they alternate between the workers, so 2 clients get a process (an interpreter)
    each rather than sharing one while the other idles (gthread: whichever wakes first)."""
    with gunicorn(workers=2, threads=4) as port:
        connections = []
        try:
            for _ in range(4):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/")
                connection.getresponse().read()
                connections.append(connection)
            served = []
            for connection in connections:
                connection.request("GET", "/")
                served.append(connection.getresponse().read().decode())
        finally:
            for connection in connections:
                connection.close()
        assert served[0] != served[1], served
        assert sorted(Counter(served).values()) == [2, 2], served


def test_more_clients_than_threads_are_all_served_without_a_lost_request():
    """10 clients, each on one persistent connection sending requests back to back, against 2 workers
    x 2 threads: nobody waits forever behind the connections the workers hold, and no request is
    lost to a connection closed under it (http.client never retries)."""
    with gunicorn(workers=2, threads=2) as port:
        barrier = threading.Barrier(10)
        answered = Counter()
        errors: list[BaseException] = []
        stop = threading.Event()

        def client(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                barrier.wait()
                while not stop.is_set():
                    connection.request("GET", "/")
                    response = connection.getresponse()
                    response.read()
                    assert response.status == 200
                    answered[index] += 1
                    if response.getheader("Connection", "").lower() == "close":
                        connection.close()  # the server asked for a new connection: reconnect
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        run_clients(client, 10, seconds=3, stop=stop)

        assert not errors, errors
        assert len(answered) == 10 and min(answered.values()) >= 5, answered


def test_an_idle_kept_alive_connection_makes_room_for_a_waiting_client():
    """One worker x 2 threads, both held by idle kept-alive connections (keep-alive 30 s): a third
    client is still answered, well before the idle connections would time out, and the clients of
    the idle connections carry on (urllib3 reconnects when the server closed an idle connection, as
    HTTP/1.1 allows)."""
    with gunicorn(workers=1, threads=2, keepalive=30) as port:
        idle = [requests.Session() for _ in range(2)]
        for session in idle:
            assert session.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        time.sleep(0.2)
        # A request that waited out the keep-alive (30 s) would fail this 10 s timeout.
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        for session in idle:
            assert session.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
            session.close()


def test_clients_that_connect_and_send_nothing_hold_no_thread():
    """One worker x 2 threads, and 4 connections opened that never send a byte (a slow or hostile
    client): a real request is still answered at once, not after they time out. (gthread waits for a
    new connection's first bytes in a thread, for up to 5 s, so 2 silent connections would hold
    both threads; here they wait in the poller and yield their places to waiting clients.)"""
    import socket

    with gunicorn(workers=1, threads=2, keepalive=30) as port:
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        try:
            time.sleep(0.2)
            # A request that waited for the silent connections to time out (5 s in a thread, then
            # the 30 s keep-alive) would fail this timeout.
            assert requests.get(f"http://127.0.0.1:{port}/", timeout=3).status_code == 200
            assert requests.get(f"http://127.0.0.1:{port}/", timeout=3).status_code == 200
        finally:
            for sock in silent:
                sock.close()


COUNTING_APP = "tests.serving.counting_worker:app"


def _dispatches(worker_class: str) -> list[int]:
    """10 requests on one kept-alive connection to 1 worker x 2 threads: the count of connections
    the worker's main thread had handed to its thread pool, as each request saw it."""
    with gunicorn(workers=1, threads=2, worker_class=worker_class, app=COUNTING_APP) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            seen = []
            for _ in range(10):
                connection.request("GET", "/")
                seen.append(int(connection.getresponse().read()))
        finally:
            connection.close()
    return seen


def test_a_kept_alive_connection_is_served_in_its_own_thread():
    """The next request on a kept-alive connection is read by the thread that served the previous
    one: the main thread hands the connection to the pool once, not once per request as gthread
    does (a wake-up of the main thread, a poller registration and a thread hand-off per request)."""
    seen = _dispatches("tests.serving.counting_worker.CountingBalancedWorker")
    assert len(set(seen)) == 1, seen
    gthread = _dispatches("tests.serving.counting_worker.CountingThreadWorker")
    assert gthread[-1] - gthread[0] >= 9, gthread  # at least one hand-off per request


def test_pipelined_requests_are_all_answered():
    """Two requests in one send (HTTP/1.1 pipelining): the second, read ahead with the first, is
    answered without waiting for the socket to become readable again."""
    import socket

    with (
        gunicorn(workers=1, threads=2) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        received = b""
        while received.count(b"HTTP/1.1 200") < 2:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive():
    """A kept-alive connection that sends nothing more is closed by the server after `keepalive`
    seconds (here 1), as gthread does, not held by its thread."""
    with gunicorn(workers=1, threads=2, keepalive=1) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
            answered = time.monotonic()
            assert connection.sock.recv(1) == b""  # closed by the server (a 10 s timeout otherwise)
            assert time.monotonic() - answered >= 0.9
        finally:
            connection.close()


def test_a_worker_stops_promptly_with_an_idle_kept_alive_connection():
    """SIGTERM with a kept-alive connection idle in a thread (keep-alive 30 s): the worker gives the
    connection back to gthread's stop, which closes it after its brief linger, and the server exits
    long before the keep-alive or the graceful timeout (30 s) would end."""
    import signal

    processes: list = []
    with gunicorn(workers=1, threads=2, keepalive=30, processes=processes) as port:
        session = requests.Session()
        assert session.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        proc = processes[0]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        session.close()
