# syntax=docker/dockerfile:1
# The two images, from one compile of the workspace:
#   docker build --target hds      -t hds:0.1.0 .            # data plane: hds fhir|dicom|medtech|issuer
#   docker build --target operator -t hds-operator:0.1.0 .   # the operator (charts/hds)
# Not built on the project's machines (no container engine there); see the README.

FROM rust:1-bookworm AS builder
# Nothing to install: the only native code is aws-lc-sys (rustls' crypto), which builds with the
# image's C compiler; the DICOM JPEG 2000 codec (openjp2) is pure Rust.
WORKDIR /src
COPY . .
# The target directory is a cache mount, so the binaries are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hds -p hds-operator \
    && mkdir -p /out \
    && cp target/release/hds target/release/hds-operator /out/

# glibc, libgcc and CA certificates, nothing else; runs as nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot AS hds
COPY --from=builder /out/hds /usr/local/bin/hds
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hds"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=builder /out/hds-operator /usr/local/bin/hds-operator
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/hds-operator"]
CMD ["run"]
