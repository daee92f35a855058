# One image, both processes: `kubescim-gateway` (default) and `kubescim-operator`, plus the `kubescim` CLI.
# Build: docker build -t kubescim:dev .   or `make image` (podman, no registry needed: hack/image.sh).
# Multi-stage: wheels are built in the first stage; the final stage has no compiler and no pip cache,
# lists the exact wheels it installed in /usr/share/kubescim/wheels.txt, runs as a non-root user and
# writes nothing outside /tmp, so it runs with a read-only root filesystem. No HEALTHCHECK: Kubernetes
# probes /healthz and /readyz.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG KUBESCIM_VERSION=0.1.0

FROM ${PYTHON_IMAGE} AS build
# A CA bundle for pip behind a TLS-inspecting proxy (mount it into the build); unset: pip's own.
ARG PIP_CERT
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY kubescim ./kubescim
COPY scim_gateway ./scim_gateway
COPY identity_operator ./identity_operator
COPY crds ./crds
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG KUBESCIM_VERSION
LABEL org.opencontainers.image.title="kubescim" \
      org.opencontainers.image.description="SCIM 2.0 gateway and operator keeping Kubernetes Teams in sync with Okta" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels "kubescim==${KUBESCIM_VERSION}" \
    && mkdir -p /usr/share/kubescim && pip list --format=freeze > /usr/share/kubescim/wheels.txt \
    && rm -rf /wheels \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin kubescim
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 8081
CMD ["kubescim-gateway"]
