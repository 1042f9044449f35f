"""`.local/stack.json`: where a running `make run` can be reached.

`make run` writes it once its services are up (the URLs of PostgreSQL, Redis, the Stripe emulator
and the site, and its own pid) and removes it when it stops. `make manage` and a plain
`python manage.py ...` read it, so a command run beside `make run` uses the same database, the
same Redis (its tasks reach the running worker) and the same emulator. `STACK_FILE` moves it.

No Django here: the settings and the devstack both import it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# What a running stack provides, as the environment variables the settings read.
VARIABLES = ("DATABASE_URL", "REDIS_URL", "STRIPE_API_HOST", "SITE_URL")


def path() -> Path:
    return Path(os.environ.get("STACK_FILE") or BASE_DIR / ".local" / "stack.json")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write(data: dict) -> Path:
    """Atomically (a reader never sees half a file)."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **data}, indent=2) + "\n")
    os.replace(tmp, target)
    return target


def remove() -> None:
    """Remove the file if this process wrote it."""
    target = path()
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        if json.loads(target.read_text()).get("pid") == os.getpid():
            target.unlink()


def running() -> dict | None:
    """The running stack's description, or None (no file, or its process is gone)."""
    try:
        data = json.loads(path().read_text())
    except (FileNotFoundError, ValueError, OSError):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return None
    return data


def environment() -> dict[str, str]:
    """The variables a command needs to use the running stack ({} when none runs)."""
    data = running() or {}
    return {name: str(data["env"][name]) for name in VARIABLES if data.get("env", {}).get(name)}


HINT = (
    "No database reachable: DATABASE_URL is unset and `make run` is not running (no {path}).\n"
    "Either start `make run` in another terminal (commands then use its PostgreSQL, Redis and Stripe\n"
    'emulator), or use `make manage ARGS="..."`, which starts the embedded services itself, or set\n'
    "DATABASE_URL and REDIS_URL (see .env.example)."
)


def hint() -> str | None:
    """What to tell a person whose command found no database, when the reason is known."""
    if os.environ.get("DATABASE_URL") or running():
        return None
    return HINT.format(path=path())
