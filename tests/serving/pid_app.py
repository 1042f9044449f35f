"""A WSGI application that answers with the serving process's id after 2 ms of CPU work, for the
gunicorn worker tests (tests/serving/test_gunicorn_worker.py): which worker served a connection."""

import os
import time


def app(environ, start_response):
    deadline = time.perf_counter() + 0.002
    while time.perf_counter() < deadline:  # CPU work, holding the interpreter as a view does
        pass
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
