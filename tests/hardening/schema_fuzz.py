"""Schemathesis over the published schema (`/api/schema/`), in-process against the WSGI app.

Used by `tests/hardening/test_found8_schema.py` (a bounded run in `make test`) and by
`make fuzz` (a long run: `FUZZ_SECONDS`, default 300). Every operation is called with the
schema's positive and negative (schema-violating) data, as an organization key and as a platform
key, for one organization (the `{org}` path parameter is pinned to it, so the calls reach the
views instead of stopping at the tenancy 404). Checks: no 5xx, every status documented, the
content type and the body as documented.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzReport:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    operations: int = 0
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        by_class = Counter()
        for status, n in self.statuses.items():
            by_class[f"{status // 100}xx"] += n
        return (
            f"schemathesis: {self.cases} cases over {self.operations} operations in {self.seconds:.1f} s; "
            f"responses {dict(sorted(by_class.items()))}; {len(self.failures)} failure(s), "
            f"{self.server_errors} server error(s)"
        )


def fuzz(
    *,
    app,
    org_id: str,
    keys: dict[str, str],
    examples: int,
    seconds: float,
    combinations: list[tuple[str, GenerationMode]] | None = None,
    before_case=None,
    derandomize: bool = False,
) -> FuzzReport:
    """Run every operation with `examples` cases for each (key, mode) of `combinations` (default:
    every key with positive and negative data); stop starting new rounds after `seconds` (a long
    run repeats the rounds with new data until then). `derandomize`: the same cases every run
    (what `make test` wants: a CI run is red only for a change, never for a new draw)."""
    if combinations is None:
        combinations = [(name, mode) for name in keys for mode in GenerationMode]
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    report = FuzzReport(operations=len(operations))
    started = time.monotonic()
    seen: set[str] = set()
    while True:
        for operation in operations:
            for key_name, mode in combinations:
                _run_operation(
                    operation,
                    org_id,
                    key_name,
                    keys[key_name],
                    mode,
                    examples,
                    report,
                    seen,
                    before_case,
                    derandomize,
                )
            report.seconds = time.monotonic() - started
            if seconds and report.seconds >= seconds:
                return report  # a long run stops at its duration, even in the middle of a round
        if report.seconds >= seconds:
            return report


def _run_operation(operation, org_id, key_name, key, mode, examples, report, seen, before_case, derandomize):
    path_parameters = {"org": org_id} if "{org}" in operation.path else {}
    strategy = operation.as_strategy(
        generation_mode=mode, path_parameters=path_parameters, headers={"Authorization": f"Bearer {key}"}
    )

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=derandomize,
    )
    @given(case=strategy)
    def run(case):
        if before_case is not None:
            before_case()
        response = case.call()
        report.cases += 1
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as exc:
            failures = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            for failure in failures:
                title = (
                    f"{operation.label} [{key_name}, {mode.value}] {type(failure).__name__}: {failure.title}"
                )
                if title not in seen:
                    seen.add(title)
                    body = response.text[:300] if response.text else ""
                    report.failures.append(
                        f"{title}\n    {response.status_code} {body}\n    {case.as_curl_command()[:600]}"
                    )

    with contextlib.suppress(Unsatisfiable):
        run()
