"""Agent roles, the tool registry and team declarations: data and pure functions, no I/O."""
