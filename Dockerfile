# syntax=docker/dockerfile:1

# cachegate in a container: a static binary on distroless, run as a non-root
# user, its SQLite file on the /data volume. Build from the repository root:
#
#     docker build -t cachegate .
#     docker run -p 8080:8080 -v cachegate-data:/data -e CACHEGATE_ADMIN_TOKEN=... cachegate
#
# deploy/compose.yaml runs two replicas on one MongoDB with Prometheus and Grafana.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a change of source does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" \
        -o /out/cachegate ./cmd/server \
    && mkdir -p /out/data

# distroless/static holds CA certificates (for https upstreams), tzdata and
# a nonroot user (65532), and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="cachegate" \
      org.opencontainers.image.description="A caching HTTP gateway with requests-cache rules, RFC 9111 mode and an admin dashboard" \
      org.opencontainers.image.source="https://github.com/cachegate/cachegate" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/cachegate /usr/local/bin/cachegate
COPY --from=build --chown=65532:65532 /out/data /data
COPY deploy/cachegate.yaml /etc/cachegate/cachegate.yaml
USER 65532:65532
VOLUME ["/data"]
# Beyond loopback the admin side (/api/, the pages, /metrics) needs
# CACHEGATE_ADMIN_TOKEN or CACHEGATE_ADMIN_TOKEN_FILE; /fetch/ works without.
# The config file comes through the environment, so -healthcheck reads the
# same settings as the server it probes.
ENV CACHEGATE_CONFIG=/etc/cachegate/cachegate.yaml \
    CACHEGATE_LISTEN=0.0.0.0:8080 \
    CACHEGATE_BACKEND=sqlite:///data/cachegate.db
EXPOSE 8080
# The binary probes its own /healthz: distroless has no curl or shell.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/cachegate", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/cachegate"]
