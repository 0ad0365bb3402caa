# hush-injector (the Kubernetes mutating webhook) on a minimal runtime, as uid 65532.
#
# The context (made by `docker/build-images`) holds the prebuilt hush-injector.
# BASE: see hushd.Dockerfile (default distroless cc, Debian 12, user nonroot = 65532).
ARG BASE=gcr.io/distroless/cc-debian12:nonroot
FROM ${BASE}
COPY hush-injector /usr/local/bin/hush-injector
USER 65532:65532
# Webhook (TLS) and plain-HTTP /healthz, /readyz, /metrics.
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/hush-injector"]
CMD ["--listen", "0.0.0.0:8443", "--tls-cert", "/etc/hush-injector/tls/tls.crt", \
     "--tls-key", "/etc/hush-injector/tls/tls.key", "--metrics-listen", "0.0.0.0:8080"]
