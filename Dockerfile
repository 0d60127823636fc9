# One image for the three services (and the topic set-up); docker-compose.yml picks which by its command.
# Only the runtime dependencies: the local stack's broker, database and mail sink and the test stack stay out.
FROM python:3.11.7-slim
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH="/app/.venv/bin:$PATH"
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project
COPY contracts contracts
COPY services services
COPY infra infra
RUN uv sync --frozen --no-default-groups && useradd --system --uid 10001 --no-create-home orderflow
USER orderflow
ENV HTTP_HOST=0.0.0.0
