# The reconciler as a container: runs the daemon (`reconciler run`).
# The operator mounts the Docker socket and a secrets directory, e.g.
#   docker run -v /var/run/docker.sock:/var/run/docker.sock -v /etc/reconciler/secrets:/secrets:ro \
#     -v reconciler-state:/var/lib/reconciler reconciler run --source https://gitea.example.com/acme/config.git
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    RECONCILER_STATE_DIR=/var/lib/reconciler \
    RECONCILER_SECRETS_DIR=/secrets

WORKDIR /app
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY schemas ./schemas
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /var/lib/reconciler --create-home reconciler

# Non-root; give this user access to the socket with `--group-add <docker socket gid>`.
USER reconciler
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["reconciler"]
CMD ["run", "--listen", "0.0.0.0:8080"]
