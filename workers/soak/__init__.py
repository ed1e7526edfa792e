"""``dualwrite soak``: the expense flow on private servers while faults are injected; every document checked end to end."""
