"""Versioned message contracts: the envelope, one model per contract version, the queue topology."""
