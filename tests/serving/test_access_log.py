"""The product's access log (`config.gunicorn_logging.AccessLogger`): the line gunicorn's own
logger writes, character for character, for gunicorn's default format and for one naming every
atom the logger computes itself; a format naming a header falls back to gunicorn's code; and a
real gunicorn server on config/gunicorn.py writes it."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
from gunicorn import glogging
from gunicorn.config import Config

from config.gunicorn_logging import AccessLogger
from tests.processes import BASE_DIR, free_port, stop_process, wait_until

EVERY_ATOM = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" '
    "%(m)s %(U)s %(q)s %(H)s %(B)s %(T)s %(D)s %(M)s %(L)s %(p)s"
)


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record):
        self.lines.append(self.format(record))


def logger(cls, fmt: str):
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", fmt)
    log = cls(cfg)
    log.now = lambda: "[01/Dec/2026:04:05:06 +0000]"
    lines = Lines()
    log.access_log.handlers = [lines]
    return log, lines


REQUESTS = [
    (
        {"REQUEST_METHOD": "GET", "RAW_URI": "/api/v1/organizations/x/usage?a=1",
         "PATH_INFO": "/api/v1/organizations/x/usage", "QUERY_STRING": "a=1", "SERVER_PROTOCOL": "HTTP/1.1",
         "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": 'wrk "quoted"', "HTTP_REFERER": "https://example.test/",
         "HTTP_AUTHORIZATION": "Bearer sk_x"},
        SimpleNamespace(status="200 OK", sent=1234, headers=[("Content-Type", "application/json")]),
        timedelta(seconds=1, microseconds=2345),
    ),
    (
        # Basic credentials name the user; no referer, no agent, nothing sent, a numeric status.
        {"REQUEST_METHOD": "POST", "RAW_URI": "/x", "PATH_INFO": "/x", "QUERY_STRING": "",
         "SERVER_PROTOCOL": "HTTP/1.0", "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
        SimpleNamespace(status=404, sent=None, headers=[]),
        timedelta(microseconds=999),
    ),
]  # fmt: skip


HEADERS = '%(h)s "%({user-agent}i)s" %({content-type}o)s'


@pytest.mark.parametrize("fmt", [Config().access_log_format, EVERY_ATOM, HEADERS])
def test_the_line_is_gunicorns_own(fmt):
    lines = {}
    for cls in (AccessLogger, glogging.Logger):  # one after the other: they share "gunicorn.access"
        log, lines[cls] = logger(cls, fmt)
        for environ, resp, took in REQUESTS:
            req = SimpleNamespace(headers=[("USER-AGENT", environ.get("HTTP_USER_AGENT", ""))])
            log.access(resp, req, environ, took)
    ours, theirs = lines[AccessLogger].lines, lines[glogging.Logger].lines
    assert ours == theirs
    assert len(ours) == 2
    if fmt == EVERY_ATOM:
        assert '"wrk \\"quoted\\""' in ours[0] and " user " in ours[1]


def test_a_format_naming_a_header_is_left_to_gunicorn():
    ours, _ = logger(AccessLogger, '%(h)s "%({user-agent}i)s"')
    assert ours._names() is None
    ours, _ = logger(AccessLogger, Config().access_log_format)
    assert ours._names() == ("h", "l", "u", "t", "r", "s", "b", "f", "a")


def test_the_product_logs_access_with_it(monkeypatch, tmp_path):
    monkeypatch.delenv("WEB_ACCESS_LOG", raising=False)
    config = importlib.reload(importlib.import_module("config.gunicorn"))
    assert config.logger_class == "config.gunicorn_logging.AccessLogger"
    port, log = free_port(), tmp_path / "access.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--logger-class", config.logger_class,
         "--access-logfile", str(log), "-k", config.worker_class, "-b", f"127.0.0.1:{port}",
         "--no-control-socket", "tests.serving.pid_app:app"],
        cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/some/path?q=1"
        wait_until(lambda: _get(url), timeout=30, what="gunicorn")
        assert requests.get(url, headers={"User-Agent": 'agent "007"'}, timeout=5).status_code == 200
        wait_until(lambda: 'agent \\"007\\"' in log.read_text(), timeout=10, what="the access line")
    finally:
        stop_process(proc)
    line = next(line for line in log.read_text().splitlines() if "007" in line)
    assert line.startswith("127.0.0.1 - - [")
    assert '"GET /some/path?q=1 HTTP/1.1" 200 ' in line and line.endswith('"-" "agent \\"007\\""')


def _get(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
