"""Finance business rules, in plain Python: no broker, no database."""
