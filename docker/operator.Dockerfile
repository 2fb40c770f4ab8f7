# syntax=docker/dockerfile:1.7
# The llmesh operator: a glibc binary on distroless, running as non-root.
# Not a static musl build: musl's allocator is markedly slower under a proxy's many
# small allocations, and bookworm's glibc matches distroless/cc-debian12.
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t llmesh/operator:dev .
# The toolchain the tests run with here (rustc 1.95).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p llmesh-operator --bin llmesh-operator \
 && install -D -m 0755 target/release/llmesh-operator /out/llmesh-operator

# distroless/cc: glibc and libgcc (what the binary links), CA certificates, tzdata,
# /etc/passwd with nonroot (65532); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/llmesh-operator /usr/local/bin/llmesh-operator
USER 65532:65532
EXPOSE 8443 9443 8080
ENTRYPOINT ["/usr/local/bin/llmesh-operator"]
