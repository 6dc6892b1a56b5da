# masq: `deno run` with the explicit permissions of `deno task start` (never -A), as a non-root user.
#
# Pinned to the Deno release masq is developed and tested with (2.9.6). Bump the tag on purpose, and run
# `deno task test` with the new version first; deno.lock is format v5, which needs Deno >= 2.3.
FROM denoland/deno:2.9.6

# The official image has a non-root user `deno` (uid 1993) that owns DENO_DIR=/deno-dir/.
WORKDIR /app
COPY deno.json deno.lock main.ts ./
COPY lib/ lib/
# The sample messages of `masq demo`.
COPY data/ data/
USER deno
# Download every dependency at build time, exactly as locked, so a container start fetches nothing.
RUN deno cache --frozen main.ts

# The start task's permissions with its two $HOME paths made concrete for this image: the AWS shared
# credentials file of user `deno` (/home/deno/.aws) and the npm cache inside DENO_DIR (/deno-dir/npm, read
# only by the embedded PostgreSQL of `masq demo`). Relative paths (data, secrets) are under /app.
# Keep this list in step with "start" in deno.json.
ENTRYPOINT ["deno", "run", \
  "--allow-net", \
  "--allow-env=AWS_*,SQS_*,DATABASE_URL,PII_HMAC_KEY,PII_HMAC_KEY_FILE,MASQ_*,PG*,FAUXQS_*,BENCH_DATABASE_URL,HOME,USERPROFILE,HOMEPATH,HOMEDRIVE,_X_AMZN_TRACE_ID,NO_COLOR", \
  "--allow-read=data,secrets,/run/secrets,/etc/masq,/home/deno/.aws,/deno-dir/npm", \
  "--allow-sys=networkInterfaces,osRelease", \
  "main.ts"]

# Default: drain the queue and exit 0 (one-shot, what the take-home's pre-seeded queue calls for).
# As a long-running service, pass `run --follow`; `demo` and `--help` work too:
#   docker run --rm masq run --follow
CMD ["run"]
