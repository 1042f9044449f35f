"""The product's WSGI application under cProfile, for `bench_profile_usage.py` (BENCH_WSGI_APP=
tests.benchmarks.profiled_wsgi:application, BENCH_PROFILE_GUNICORN=<file>): after each request
past the 8th, the top functions of the requests since then are written to that file."""

from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import time

from config.wsgi import application as product

_profile = cProfile.Profile()
_seen = [0]
_gc = {"start": 0.0, "total": 0.0, "runs": [0, 0, 0]}


def _gc_timer(phase, info):
    if phase == "start":
        _gc["start"] = time.process_time()
    else:
        _gc["total"] += time.process_time() - _gc["start"]
        _gc["runs"][info["generation"]] += 1


gc.callbacks.append(_gc_timer)


def application(environ, start_response):
    _seen[0] += 1
    if _seen[0] <= 8:
        return product(environ, start_response)
    if os.environ.get("BENCH_PROFILE_GC_ONLY"):  # garbage collection figures only, no profiler
        _profile.disable()
    else:
        _profile.enable()
    try:
        return product(environ, start_response)
    finally:
        _profile.disable()
        out = io.StringIO()
        out.write(
            f"requests profiled: {_seen[0] - 8}; garbage collection since start: "
            f"{1000 * _gc['total']:.1f} ms CPU over {_seen[0]} requests, "
            f"collections per generation {_gc['runs']}\n"
        )
        if not os.environ.get("BENCH_PROFILE_GC_ONLY"):
            pstats.Stats(_profile, stream=out).sort_stats("cumulative").print_stats(45)
        with open(os.environ["BENCH_PROFILE_GUNICORN"], "w") as f:
            f.write(out.getvalue())
