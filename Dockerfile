# One image for the three services; docker-compose.yml picks the service by its command.
FROM python:3.11-slim
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH="/app/.venv/bin:$PATH"
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY contracts contracts
COPY services services
COPY infra infra
RUN uv sync --frozen --no-dev
ENV HTTP_HOST=0.0.0.0
