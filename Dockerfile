# syntax=docker/dockerfile:1
#
# permd container image: a release build on Debian bookworm, run on
# distroless cc-debian12 (glibc and libgcc of the same Debian release, no
# shell, no package manager) as the non-root user 65532.
#
#   docker build -t permd:0.1.0 .
#   docker run --rm -p 50051:50051 permd:0.1.0        # serves the demo tenant
#
# The Helm chart (helm/permd) runs it as a sidecar and sets everything with
# PERMD_* environment variables (README.md, "Configuration").

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
# Everything cargo may read (manifest, lockfile, build.rs, proto/, src/,
# benches/ named in Cargo.toml, ...); .dockerignore keeps target/ and .git out.
# protoc comes from the protoc-bin-vendored crate, so no apt packages are needed.
COPY . .
# The cache mounts keep the registry and target dir across builds (BuildKit);
# the binary is copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin permd \
    && install -m 0755 target/release/permd /usr/local/bin/permd

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /usr/local/bin/permd /usr/local/bin/permd
# 65532 is distroless's "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
# gRPC (Authorizer, grpc.health.v1.Health, reflection) and Prometheus metrics.
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/permd"]
# Beyond loopback inside the container, or nothing outside it could connect.
# A flag wins over PERMD_LISTEN: the chart runs plain "serve" to use the env.
CMD ["serve", "--listen", "0.0.0.0:50051"]
