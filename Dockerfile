# One image for the API and both workers; the command picks the role.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY keel keel
COPY api api
COPY workflows workflows
COPY activities activities
COPY agents agents
COPY migrations migrations
COPY alembic.ini worker.py ./
COPY evals evals
RUN pip install -e .
RUN useradd -m keel
USER keel
EXPOSE 8000
CMD ["uvicorn", "--factory", "api.main:build", "--host", "0.0.0.0", "--port", "8000"]
