# syntax=docker/dockerfile:1.7
# llmesh-mock (tests crate): the mock provider the kind end-to-end test deploys.
# The toolchain the tests run with here (rustc 1.95).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p llmesh-tests --bin llmesh-mock \
 && install -D -m 0755 target/release/llmesh-mock /out/llmesh-mock

# distroless/cc: glibc and libgcc (what the binary links), CA certificates, tzdata,
# /etc/passwd with nonroot (65532); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/llmesh-mock /usr/local/bin/llmesh-mock
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/llmesh-mock"]
