# hushd (and the `hush` CLI beside it) on a minimal runtime, as uid 65532.
#
# The binaries are prebuilt: build the context with `docker/build-images` (it stages
# hushd, hush and an empty state/ directory; target/ is never sent whole).
#
# BASE: any image with glibc and libgcc at least as new as the build host's, CA certificates and
# a passwd entry for 65532. Default: distroless cc (Debian 12), user `nonroot` = 65532. Where
# images cannot be pulled, `docker/build-local-base` makes one from the host's files.
ARG BASE=gcr.io/distroless/cc-debian12:nonroot
FROM ${BASE}
COPY hushd hush /usr/local/bin/
# The SQLite database lives here; mount a volume over it to keep the store.
COPY --chown=65532:65532 state/ /var/lib/hush/
USER 65532:65532
EXPOSE 8200
ENTRYPOINT ["/usr/local/bin/hushd"]
# Production shape: mount a certificate at /etc/hush/tls, then `hush operator init` and unseal.
CMD ["--storage", "sqlite:///var/lib/hush/hush.db", "--listen", "0.0.0.0:8200", \
     "--tls-cert", "/etc/hush/tls/tls.crt", "--tls-key", "/etc/hush/tls/tls.key"]
