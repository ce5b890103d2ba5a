# Multi-stage build of the same binary the README builds: `cargo build --release --locked`,
# default features, the toolchain the project pins (Rust 1.95).
#   docker build -t kube-event-exporter .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin kube-event-exporter

# Distroless with glibc, no shell, non-root (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kube-event-exporter /usr/local/bin/kube-event-exporter
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/usr/local/bin/kube-event-exporter"]
