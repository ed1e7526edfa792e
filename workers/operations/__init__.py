"""What operators run against a live system: queue depths, dead letters and their repair, the audit log."""
