"""Keel: durable orchestration for AI agents on Temporal."""

__version__ = "0.1.0"
