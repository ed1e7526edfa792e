"""The finance side: shared and expense categories per legal entity (and, next, the ledger)."""
