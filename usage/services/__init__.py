"""Writes of the usage app, one module per topic; this package re-exports the public ones.

- `recording`: events in bulk (one statement per batch, rollups in the same statement) and the
  in-process `usage_record`.
- `track`: quota check, credit consumption and event in one transaction.
- `quotas`: the quota check on the Redis counters, soft-limit notices.
- `reservations`: credit and quota holds for long work: create, settle, release, expire.
- `meter_sync`: usage above the limits to Stripe meters, and its drift.
- `drift`: rollups against the raw events.
"""

from .drift import usage_rollup_drift_list
from .meter_sync import (
    SyncResult,
    organizations_metered,
    usage_meter_backlog_check,
    usage_meter_drift_list,
    usage_meter_events_queue,
    usage_meter_sync,
    usage_meter_sync_queue,
)
from .recording import RecordResult, Rejected, usage_events_record, usage_record
from .reservations import (
    ReservationResult,
    usage_reservation_create,
    usage_reservation_release,
    usage_reservation_settle,
    usage_reservations_expire,
)
from .track import TrackResult, usage_track

__all__ = [
    "RecordResult",
    "Rejected",
    "ReservationResult",
    "SyncResult",
    "TrackResult",
    "organizations_metered",
    "usage_events_record",
    "usage_meter_backlog_check",
    "usage_meter_drift_list",
    "usage_meter_events_queue",
    "usage_meter_sync",
    "usage_meter_sync_queue",
    "usage_record",
    "usage_reservation_create",
    "usage_reservation_release",
    "usage_reservation_settle",
    "usage_reservations_expire",
    "usage_rollup_drift_list",
    "usage_track",
]
