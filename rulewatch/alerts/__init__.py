"""Alerts: target slips and recoveries from the stored checks, and source/job health."""
