# One image for every algorail service. The charts run it as
#   algorail gateway|runner|hooks|connect --plan /etc/algorail/plan.json
# with ALGORAIL_BOOTSTRAP_SERVERS, ALGORAIL_RESULTS_URL, ALGORAIL_OBJECT_STORE_URL and
# ALGORAIL_API_KEYS_FILE in the environment.
#
#   docker build -t ghcr.io/algorail/algorail:0.1.0 .
#
# Python algos: build FROM this image and copy your modules to /opt/algorail/algos
# (on PYTHONPATH); set the runner's image in your pipeline (`image:`).

# -- build: wheels for algorail and its dependencies --------------------------------------
FROM python:3.11.10-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY algorail ./algorail
COPY plugins ./plugins
COPY connectors ./connectors
COPY charts ./charts
COPY templates ./templates
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[sql,operator,grpc]'

# -- runtime -----------------------------------------------------------------------------
FROM python:3.11.10-slim-bookworm
LABEL org.opencontainers.image.title="algorail" \
      org.opencontainers.image.description="algorail gateway, runner, hook dispatcher, connectors and operator" \
      org.opencontainers.image.source="https://github.com/algorail/algorail" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/opt/algorail/algos \
    HOME=/tmp
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'algorail[sql,operator,grpc]' \
    && groupadd --gid 10001 algorail \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin algorail \
    && mkdir -p /opt/algorail/algos /etc/algorail
USER 10001:10001
WORKDIR /opt/algorail
EXPOSE 8080 9100
ENTRYPOINT ["algorail"]
CMD ["--help"]
