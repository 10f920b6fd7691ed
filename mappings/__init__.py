"""Mapping strategies: functions from (cascade, hardware, workload, free parameters) to a Mapping."""
