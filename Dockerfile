# One image for both services and compose's one-shots (`secrets`, `topics`); docker-compose.yml picks
# `python -m users_svc`, `python -m auth_svc` or a `herald` command.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/app/.venv/bin:$PATH

RUN pip install --no-cache-dir uv==0.13.8 \
 && useradd --create-home --uid 10001 herald \
 && mkdir -p /data && chown herald /data

WORKDIR /app

# Dependencies first, in their own layer: source changes do not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-cache

COPY README.md ./
COPY herald ./herald
COPY users_svc ./users_svc
COPY auth_svc ./auth_svc
RUN uv sync --frozen --no-dev --no-editable --no-cache

USER herald
ENV USERS_DATA_DIR=/data AUTH_DATA_DIR=/data
CMD ["python", "-m", "users_svc"]
