/**
 * The wiring of `masq run`: a Config opens the parts (the SQS source, the PostgreSQL sink, the transform
 * bound to the masker and the vault cipher), then the pipeline runs over them. The demo calls runMasq()
 * too, and the benchmark opens the same parts, so both exercise the real path.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { ConfigError, errorMessage } from "./errors.ts";
import type { Logger } from "./log.ts";
import { runPipeline } from "./pipeline.ts";
import { redactUrl, resolveVaultKeyId } from "./secrets.ts";
import { redriveVerifier } from "./lifecycle/redrive.ts";
import { connectionAdvice, createPostgresSink, type PostgresSink } from "./sink/postgres.ts";
import { poolConfig, processEnv } from "./sink/connection.ts";
import { recordKeyUse } from "./sink/schema.ts";
import { openSqsSource, type SqsSource } from "./source/sqs.ts";
import { createMasker } from "./transform/mask.ts";
import { rejectionFor, toRecord } from "./transform/record.ts";
import type { Clock } from "./clock.ts";
import type { Message, PipelineEvent, Sink, Source, Summary, Transform } from "./types.ts";
import { createVaultCipher, type IngestVault } from "./vault.ts";
import { type IngestVaultKeys, openSealingVault } from "./ingest_vault.ts";

export interface RunOptions {
  log: Logger;
  /** Aborting it drains in-flight work and ends the run. */
  stop?: AbortSignal;
  env?: (name: string) => string | undefined;
  /** Subscribes to the run's events (metrics, progress, the benchmark). */
  onEvent?: (e: PipelineEvent) => void;
  /** Encrypts originals (dead-lettered bodies, pii_vault), when a vault key is configured. */
  vault?: IngestVault;
  /** Seal originals to these public keys (lib/ingest_vault.ts) instead of a vault key. */
  sealed?: IngestVaultKeys;
  clock?: Clock;
}

/** What the pipeline runs over. */
export interface Parts {
  source: Source;
  sink: Sink;
  transform: Transform;
  /** The vault cipher, when a vault key is configured (or the caller brought its own). */
  vault?: IngestVault;
}

/** The parts a Config opens, connected and checked; `close()` closes the source and the sink. */
export interface OpenParts extends Parts {
  source: SqsSource;
  sink: PostgresSink;
  close(): Promise<void>;
}

/**
 * Connects to PostgreSQL and SQS (failing fast with a ConfigError naming the setting), and binds the
 * transform to the masker and the vault cipher.
 *
 * @example
 * ```ts
 * import { openParts, runParts } from "./masq.ts";
 * import type { Config } from "./config.ts";
 * import { silentLogger } from "./log.ts";
 * declare const config: Config;
 * const parts = await openParts(config, { log: silentLogger });
 * try {
 *   console.log(JSON.stringify(await runParts(config, parts, { log: silentLogger })));
 * } finally {
 *   await parts.close();
 * }
 * ```
 */
export async function openParts(
  config: Config,
  opts: Pick<RunOptions, "log" | "env" | "vault" | "sealed">,
): Promise<OpenParts> {
  const { log } = opts;
  for (const warning of config.warnings ?? []) log.warn(warning);
  const masker = createMasker(config.hmacKey, config.hmacKeyId);
  // TLS as libpq's sslmode and PGSSL* settings say, or a ConfigError line (lib/sink/connection.ts).
  const connection = await poolConfig(config.databaseUrl, opts.env ?? processEnv, {
    connectionTimeoutMillis: 10_000,
    application_name: "masq",
  });
  const sink = createPostgresSink(connection, {
    poolSize: config.dbPoolSize,
    log,
    connectTimeoutMs: 10_000,
    namedStatements: config.dbNamedStatements,
  });
  try {
    await sink.checkSchema();
    await recordKeyUse(sink.pool, config.hmacKeyId);
  } catch (err) {
    await sink.close().catch(() => {});
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(
      "--database-url / DATABASE_URL",
      `cannot use ${redactUrl(config.databaseUrl)}: ${errorMessage(err)}${connectionAdvice(err)}`,
    );
  }
  log.info("connected to PostgreSQL", { database: redactUrl(config.databaseUrl), pool: config.dbPoolSize });
  let source: SqsSource;
  try {
    source = await openSqsSource({
      queueUrl: config.queueUrl,
      dlqUrl: config.dlqUrl,
      endpoint: config.endpoint,
      region: config.region,
      protocol: config.sqsProtocol,
      batchSize: config.batchSize,
      waitSeconds: config.waitSeconds,
      visibilityTimeout: config.visibilityTimeout,
      concurrency: config.concurrency,
      log,
      // A replay's key is trusted only when `masq redrive` signed it with this same HMAC key.
      verifyRedrive: redriveVerifier(masker),
      ...(opts.env ? { env: opts.env } : {}),
    });
  } catch (err) {
    await sink.close().catch(() => {});
    throw err;
  }
  // Sealed (public keys only), else the vault key from the configuration, unless the caller brought its own.
  let sealed: Awaited<ReturnType<typeof openSealingVault>> | undefined;
  try {
    sealed = opts.sealed && await openSealingVault(config, opts.sealed, log, opts.env ?? processEnv);
  } catch (err) {
    source.close();
    await sink.close().catch(() => {});
    throw err;
  }
  const vault = opts.vault ?? sealed?.vault ??
    (config.vaultKey
      ? await createVaultCipher(config.vaultKey, resolveVaultKeyId(opts.env ?? (() => undefined)))
      : undefined);
  const transform: Transform = {
    record: (m: Message) => toRecord(m, masker, vault),
    rejection: (m: Message, reason: string) => rejectionFor(m, reason, masker),
  };
  return {
    source,
    sink,
    transform,
    ...(vault ? { vault } : {}),
    async close() {
      source.close();
      await sealed?.close();
      await sink.close().catch((err) =>
        log.warn("closing the database pool failed", { error: errorMessage(err) })
      );
    },
  };
}

/**
 * Runs the pipeline over `parts` with the configuration's settings until the queue is drained (or, with
 * `follow`, until stopped). The caller closes the parts. See openParts() for an example.
 */
export function runParts(config: Config, parts: Parts, opts: RunOptions): Promise<Summary> {
  return runPipeline({
    source: parts.source,
    sink: parts.sink,
    transform: parts.transform,
    log: opts.log,
    follow: config.follow,
    concurrency: config.concurrency,
    connections: config.dbPoolSize,
    maxBackoffMs: config.maxBackoffMs,
    ...(parts.vault ? { vault: parts.vault } : {}),
    ...(opts.stop ? { stop: opts.stop } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
}

/**
 * Opens the parts, runs the pipeline over them, and closes them: `masq run`.
 *
 * @example
 * ```ts
 * import { runMasq, type RunOptions } from "./masq.ts";
 * import type { Config } from "./config.ts";
 * import { createLogger } from "./log.ts";
 * declare const config: Config;
 * const options: RunOptions = { log: createLogger(), onEvent: (e) => console.error(e.type) };
 * const summary = await runMasq(config, options);
 * console.log(JSON.stringify(summary));
 * ```
 */
export async function runMasq(config: Config, opts: RunOptions): Promise<Summary> {
  const parts = await openParts(config, opts);
  try {
    return await runParts(config, parts, opts);
  } finally {
    await parts.close();
  }
}
