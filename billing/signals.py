"""Signals billing sends for the apps above it (which billing may not import)."""

from django.dispatch import Signal

# Sent by `manage.py seed_demo` once the demo organization is ready: `organization`, `stripe`
# (False with --no-stripe). Apps above billing add their demo data; a receiver may return a line
# for the command to print.
demo_seeded = Signal()
