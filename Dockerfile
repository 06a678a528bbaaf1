# The reconciler daemon as a container image: `reconciler run` as a non-root user, from a venv in
# /opt/reconciler holding the runtime dependencies pinned by constraints.txt.
#
# Build (anywhere PyPI and Docker Hub are reachable):
#   docker build -t reconciler .
# Another base (BASE: any Debian-like image with python3 >= 3.11 and its venv module) or a package
# mirror for the dependency step (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, PIP_TRUSTED_HOST:
# build args, so they are not kept in the image's environment; never put a password in them, they
# show in `docker history`), e.g. as the test suite builds it with no registry at hand:
#   docker build --network host --build-arg BASE="$(scripts/base-image.sh)" \
#     --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=http://127.0.0.1:8765/ -t reconciler .
#
# Run: the engine's socket, with the socket's group added (the user is not root); the state in a
# volume; the operator policy and the secrets read-only. The HEALTHCHECK asks /healthz on the
# address the daemon listens on: RECONCILER_LISTEN (default 0.0.0.0:8080), or `--listen` if given.
#   docker run -d --name reconciler --restart unless-stopped \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v reconciler-state:/var/lib/reconciler \
#     -v /etc/reconciler/policy.yaml:/etc/reconciler/policy.yaml:ro -e RECONCILER_POLICY=/etc/reconciler/policy.yaml \
#     -v /etc/reconciler/secrets:/secrets:ro \
#     -v /etc/reconciler/gitea_token:/run/secrets/gitea_token:ro -e RECONCILER_GITEA_TOKEN_FILE=/run/secrets/gitea_token \
#     -p 8080:8080 \
#     reconciler run --source https://gitea.example.com/acme/config.git \
#       --gitea-url https://gitea.example.com --gitea-repo acme/config --public-url https://reconciler.example.com
ARG BASE=python:3.11-slim-bookworm

# Stage 1: the venv in /opt/reconciler. Its dependency layer (pyproject.toml's runtime dependencies at
# constraints.txt's pins) is rebuilt only when those two files change; the package goes in after.
FROM ${BASE} AS build
ARG PIP_INDEX_URL PIP_FIND_LINKS PIP_NO_INDEX PIP_TRUSTED_HOST
ENV VIRTUAL_ENV=/opt/reconciler PATH=/opt/reconciler/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt ./
RUN python3 -m venv "$VIRTUAL_ENV" \
 && python3 -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
      >requirements.txt \
 && pip install --no-cache-dir -c constraints.txt -r requirements.txt
# The package without dependencies (.dockerignore lets in only pyproject.toml, constraints.txt,
# README.md and reconciler/).
COPY . ./
RUN pip install --no-cache-dir --no-deps . && reconciler --help >/dev/null

# Stage 2: the base, its user, and the venv (copied last: a change of the code rebuilds only that).
FROM ${BASE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/reconciler --create-home \
      --shell /usr/sbin/nologin reconciler
# hadolint ignore=DL3064
ENV VIRTUAL_ENV=/opt/reconciler \
    PATH=/opt/reconciler/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RECONCILER_LISTEN=0.0.0.0:8080 \
    RECONCILER_STATE_DIR=/var/lib/reconciler \
    RECONCILER_SECRETS_DIR=/secrets
USER 10001:10001
WORKDIR /var/lib/reconciler
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-m", "reconciler.daemon.healthcheck"]
ENTRYPOINT ["reconciler"]
CMD ["run"]
COPY --from=build /opt/reconciler /opt/reconciler
