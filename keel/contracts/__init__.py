"""Contracts between the API, workflows and activities: pydantic models, one module per area.

They are durable: a model that travels through workflow history must stay readable by
every deployed version, so fields are only ever added, with defaults.
"""
