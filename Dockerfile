# syntax=docker/dockerfile:1

# Build stage: install the package and its dependencies into a virtualenv, so the final
# image carries neither the source tree nor pip's build leftovers.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# Everything `pip install .` reads: pyproject names README.md as the readme and maps
# migrations/ into the package (auth_service.migrations).
COPY pyproject.toml README.md ./
COPY auth_service/ auth_service/
COPY migrations/ migrations/
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTH_DATA_DIR=/var/lib/auth-service
# A numeric UID, so that Kubernetes' runAsNonRoot can verify the user without a runAsUser.
# The data folder is only used by the embedded PostgreSQL (when AUTH_DATABASE_URL is unset).
RUN groupadd --system --gid 10001 auth-service \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/auth-service \
       --shell /usr/sbin/nologin auth-service \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/auth-service
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/auth-service
EXPOSE 8080
# Liveness only: readiness (/health/ready) depends on the database, and an unreachable
# database should not make Docker report (or an orchestrator restart) a healthy process.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/live', timeout=2)"]
# Exec form: the server is PID 1 and receives SIGTERM directly, so it shuts down cleanly.
CMD ["auth-service", "serve", "--host", "0.0.0.0", "--port", "8080"]
