"""The application shell, the top floor: the `keel` CLI, the embedded dev stack, evaluation,
seeding and the API clients. It may import every layer; nothing below imports it."""
