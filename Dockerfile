# tracejoin's image: built in a Rust stage, run from a distroless-style root assembled from
# Debian packages (deploy/image/rootfs.sh: libc, OpenSSL, zlib, libgcc, CA bundle; no shell).
# Non-root (65532), read-only root filesystem friendly (writes nothing outside /tmp), config at
# /etc/tracejoin/tracejoin.yaml (mount yours over /etc/tracejoin), /metrics, /healthz and
# /readyz on 9464, SIGTERM drains within shutdown.timeout (give the orchestrator's grace more).
#
#   docker build -t tracejoin .        (or: buildah bud -t tracejoin .  /  podman build -t tracejoin .)
#   docker run --read-only -v $PWD/my-config:/etc/tracejoin:ro -p 9464:9464 tracejoin
#
# The suite builds the runtime stage here with buildah, where no base image can be pulled:
# scripts/image.sh assembles the same root on the host and passes it as ROOTFS_IMAGE.
ARG RUST_IMAGE=rust:1-bookworm
ARG ROOTFS_IMAGE=build

FROM ${RUST_IMAGE} AS build
# librdkafka (bundled by rdkafka-sys) builds with a C toolchain and make; OpenSSL for TLS/SASL;
# libcurl for its OAUTHBEARER OIDC token requests.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev \
    libcurl4-openssl-dev binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tracejoin
RUN apt-get update \
 && deploy/image/rootfs.sh /rootfs target/release/tracejoin /tmp/debs \
 && rm -rf /var/lib/apt/lists/* /tmp/debs

FROM ${ROOTFS_IMAGE} AS rootfs

FROM scratch AS runtime
COPY --from=rootfs /rootfs/ /
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tracejoin"]
CMD ["run", "--config", "/etc/tracejoin/tracejoin.yaml"]
