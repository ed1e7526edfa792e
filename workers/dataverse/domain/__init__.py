"""Dataverse business rules, in plain Python: no broker, no database."""
