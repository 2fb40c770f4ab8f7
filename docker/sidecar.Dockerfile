# syntax=docker/dockerfile:1.7
# The llmesh sidecar: a glibc binary on distroless, running as non-root.
# Not a static musl build: musl's allocator is markedly slower under a proxy's many
# small allocations, and bookworm's glibc matches distroless/cc-debian12. The
# injection webhook runs it with a read-only root filesystem and no capabilities.
# Build from the repository root:
#   docker build -f docker/sidecar.Dockerfile -t llmesh/sidecar:dev .
# The toolchain the tests run with here (rustc 1.95).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Symbols stripped as well as debug info (the workspace profile keeps symbols for
# backtraces in local builds): 9.1 MiB -> 7.2 MiB for the sidecar.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p llmesh-sidecar --bin llmesh-sidecar \
 && install -D -m 0755 target/release/llmesh-sidecar /out/llmesh-sidecar

# distroless/cc: glibc and libgcc (what the binary links), CA certificates, tzdata,
# /etc/passwd with nonroot (65532); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/llmesh-sidecar /usr/local/bin/llmesh-sidecar
USER 65532:65532
EXPOSE 4000 4001
ENTRYPOINT ["/usr/local/bin/llmesh-sidecar"]
