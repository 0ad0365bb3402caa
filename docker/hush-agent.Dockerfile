# hush-agent on a minimal runtime, as uid 65532, with fusermount3 for `--fuse`.
#
# The context (made by `docker/build-images`) holds the prebuilt hush-agent and the build host's
# fusermount3 (package fuse3; it needs only glibc). In Kubernetes the injector runs it with a
# read-only root filesystem, all capabilities dropped and no privilege escalation; it writes only
# to its destination (an in-memory volume).
#
# BASE: see hushd.Dockerfile (default distroless cc, Debian 12, user nonroot = 65532).
ARG BASE=gcr.io/distroless/cc-debian12:nonroot
FROM ${BASE}
COPY hush-agent /usr/local/bin/hush-agent
COPY fusermount3 /usr/bin/fusermount3
USER 65532:65532
# /healthz, /readyz and /metrics when started with --metrics-listen 0.0.0.0:8299.
EXPOSE 8299
ENTRYPOINT ["/usr/local/bin/hush-agent"]
