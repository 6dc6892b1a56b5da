# masq as one `deno compile` binary: built in a Deno image, shipped in a distroless one that holds nothing
# but the binary (no shell, no package manager, no Deno), run as a non-root user.
#
# The build stage is pinned to the Deno release masq is developed and tested with (2.9.6). Bump the tag
# on purpose, and run `deno task test` with the new version first; deno.lock is format v5 (Deno >= 2.3).
# `deno compile` downloads its runtime (denort) from dl.deno.land during the build.
FROM denoland/deno:2.9.6 AS build
WORKDIR /app
COPY deno.json deno.lock main.ts ./
COPY lib/ lib/
# The sample messages of `masq demo`, embedded in the binary.
COPY data/ data/
COPY scripts/compile.ts scripts/permissions.ts scripts/
# Every npm package exactly as locked, into ./node_modules.
RUN deno install --frozen
# The permissions baked into the binary come from the `masq` task in deno.json (scripts/compile.ts);
# $HOME/.aws among them is the runtime user's (distroless `nonroot`, uid 65532).
RUN HOME=/home/nonroot deno task compile && ./dist/masq --help > /dev/null

# glibc and libgcc, which the binary links against, and nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /app/dist/masq /masq
USER 65532:65532
# /metrics, /healthz and /readyz when started with --metrics-port 9464 (or MASQ_METRICS_PORT=9464).
EXPOSE 9464
ENTRYPOINT ["/masq"]
# A long-running consumer. One-shot drain: `docker run --rm masq run`; `migrate`, `demo` and `--help` work too.
CMD ["run", "--follow"]
