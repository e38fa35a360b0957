# syntax=docker/dockerfile:1
# Build: dependencies first (cached while only src/ changes), then the service.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migration/Cargo.toml migration/Cargo.toml
COPY core/Cargo.toml core/Cargo.toml
COPY vendor vendor
RUN mkdir -p src migration/src core/src tests/api tests/reliability \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > migration/src/main.rs && touch migration/src/lib.rs core/src/lib.rs \
    && touch tests/api/main.rs tests/reliability/main.rs \
    && cargo build --release --locked -p nowatch-ota \
    && rm -rf src migration/src core/src
COPY . .
RUN touch src/main.rs src/lib.rs migration/src/lib.rs core/src/lib.rs \
    && cargo build --release --locked -p nowatch-ota

# Runtime: small Debian, non-root, data on a volume, configured by environment.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/nowatch-ota nowatch
COPY --from=build /src/target/release/nowatch-ota /usr/local/bin/nowatch-ota
COPY keys/release /etc/nowatch-ota/release-keys
WORKDIR /var/lib/nowatch-ota
RUN mkdir -p data && chown -R nowatch /var/lib/nowatch-ota
USER 10001
ENV NOWATCH_OTA__SERVER__HOST=0.0.0.0 \
    NOWATCH_OTA__SERVER__PORT=8080 \
    NOWATCH_OTA__SIGNING__RELEASE_KEYS_DIR=/etc/nowatch-ota/release-keys \
    NOWATCH_OTA__LOG__FORMAT=json
VOLUME ["/var/lib/nowatch-ota/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/nowatch-ota"]
CMD ["serve"]
