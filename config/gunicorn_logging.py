"""gunicorn's logger with a cheaper access line (config/gunicorn.py: `logger_class`).

gunicorn builds every access line from a dictionary of all its atoms, every request header, every
response header and every WSGI environ entry (a hundred entries, each copied once more to escape
quotes), then logs it through `logging`, which walks the stack to find the caller. On a 2-core
machine serving `GET /usage` that was 8 % of a web worker's time under the interpreter lock
(py-spy, 2026-12-01), for a line that names nine atoms.

This logger computes only the atoms `access_log_format` names, exactly as gunicorn computes them
(the same values, the same quoting: `gunicorn.glogging.SafeAtoms`), and hands the record to the
access logger's handlers without the caller lookup (the access line's formatter shows the message
alone). A format naming a header or environ atom (`%({name}i)s`, `{...}o`, `{...}e`) is served by
gunicorn's own code, whole. Everything else is gunicorn's Logger."""

from __future__ import annotations

import logging
import os
import re
import traceback

from gunicorn import glogging

_NAMED = re.compile(r"%\(([^)]*)\)")
_NO_FILE = "(unknown file)"  # what logging records when it does not look the caller up


def _status(resp, environ, request_time):
    status = resp.status
    return status.split(None, 1)[0] if isinstance(status, str) else status


# gunicorn.glogging.Logger.atoms, atom by atom (gunicorn 27.0.1).
_ATOMS = {
    "h": lambda resp, environ, rt: environ.get("REMOTE_ADDR", "-"),
    "l": lambda resp, environ, rt: "-",
    "r": lambda resp, environ, rt: (
        f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
    ),
    "s": _status,
    "m": lambda resp, environ, rt: environ.get("REQUEST_METHOD"),
    "U": lambda resp, environ, rt: environ.get("PATH_INFO"),
    "q": lambda resp, environ, rt: environ.get("QUERY_STRING"),
    "H": lambda resp, environ, rt: environ.get("SERVER_PROTOCOL"),
    "b": lambda resp, environ, rt: (getattr(resp, "sent", None) is not None and str(resp.sent)) or "-",
    "B": lambda resp, environ, rt: getattr(resp, "sent", None),
    "f": lambda resp, environ, rt: environ.get("HTTP_REFERER", "-"),
    "a": lambda resp, environ, rt: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda resp, environ, rt: rt.seconds,
    "D": lambda resp, environ, rt: (rt.seconds * 1000000) + rt.microseconds,
    "M": lambda resp, environ, rt: (rt.seconds * 1000) + int(rt.microseconds / 1000),
    "L": lambda resp, environ, rt: f"{rt.seconds:d}.{rt.microseconds:06d}",
    "p": lambda resp, environ, rt: f"<{os.getpid()}>",
}


class AccessLogger(glogging.Logger):
    _plan: tuple[str, tuple[str, ...] | None] = ("", None)

    def _names(self) -> tuple[str, ...] | None:
        """The atoms the access format names, or None when it names one this logger leaves to
        gunicorn (a header or environ atom, or one it does not know)."""
        fmt = self.cfg.access_log_format
        if self._plan[0] != fmt:
            names = tuple(dict.fromkeys(_NAMED.findall(fmt)))
            known = all(name in _ATOMS or name in ("u", "t") for name in names)
            self._plan = (fmt, names if known else None)
        return self._plan[1]

    def atoms(self, resp, req, environ, request_time):
        names = self._names()
        if names is None:
            return super().atoms(resp, req, environ, request_time)
        atoms = {}
        for name in names:
            if name == "u":
                atoms[name] = self._get_user(environ) or "-"
            elif name == "t":
                atoms[name] = self.now()
            else:
                atoms[name] = _ATOMS[name](resp, environ, request_time)
        return atoms

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        logger = self.access_log
        try:
            if not logger.isEnabledFor(logging.INFO):
                return
            safe_atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
            fmt = self.cfg.access_log_format
            record = logger.makeRecord(logger.name, logging.INFO, _NO_FILE, 0, fmt, (safe_atoms,), None)
            logger.handle(record)
        except Exception:
            self.error(traceback.format_exc())
