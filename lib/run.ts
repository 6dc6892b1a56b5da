/**
 * `masq run`: wires config -> source, sink, masker -> pipeline. The demo and the benchmark call this same
 * function, so they exercise the real path.
 */
import type { Config } from "./config.ts";
import { redactUrl } from "./config.ts";
import { ConfigError, errorMessage } from "./errors.ts";
import type { Logger } from "./log.ts";
import { runPipeline } from "./pipeline.ts";
import { createPostgresSink } from "./sink/postgres.ts";
import { openSqsSource } from "./source/sqs.ts";
import { createMasker } from "./transform/mask.ts";
import { rejectionFor, toRecord } from "./transform/record.ts";
import type { Clock, Message, PipelineEvent, Summary, Transform } from "./types.ts";
import { createVaultCipher, type VaultCipher } from "./vault.ts";

export interface RunOptions {
  log: Logger;
  /** Aborting it drains in-flight work and ends the run. */
  stop?: AbortSignal;
  env?: (name: string) => string | undefined;
  progressEveryMs?: number;
  /** Subscribes to the run's events (metrics, the benchmark). */
  onEvent?: (e: PipelineEvent) => void;
  /** Encrypts originals (dead-lettered bodies, pii_vault), when a vault key is configured. */
  vault?: VaultCipher;
  clock?: Clock;
}

/**
 * Connects to PostgreSQL and SQS (failing fast with a ConfigError naming the setting), then runs the
 * pipeline until the queue is drained (or, with `follow`, until stopped).
 *
 * @example
 * ```ts
 * const summary = await runMasq(config, { log: createLogger() });
 * ```
 */
export async function runMasq(config: Config, opts: RunOptions): Promise<Summary> {
  const { log } = opts;
  for (const warning of config.warnings ?? []) log.warn(warning);
  const masker = createMasker(config.hmacKey, config.hmacKeyId);
  const sink = createPostgresSink(config.databaseUrl, {
    poolSize: config.dbPoolSize,
    log,
    connectTimeoutMs: 10_000,
  });
  try {
    await sink.ensureSchema();
  } catch (err) {
    await sink.close().catch(() => {});
    throw new ConfigError(
      "--database-url / DATABASE_URL",
      `cannot use ${redactUrl(config.databaseUrl)}: ${errorMessage(err)}`,
    );
  }
  log.info("connected to PostgreSQL", { database: redactUrl(config.databaseUrl), pool: config.dbPoolSize });
  let source;
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
      log,
      ...(opts.env ? { env: opts.env } : {}),
    });
  } catch (err) {
    await sink.close().catch(() => {});
    throw err;
  }
  // The vault key from the configuration, unless the caller brought its own cipher.
  const vault = opts.vault ??
    (config.vaultKey ? await createVaultCipher(config.vaultKey, config.hmacKeyId) : undefined);
  const transform: Transform = {
    record: (m: Message) => toRecord(m, masker, vault),
    rejection: (m: Message, reason: string) => rejectionFor(m, reason, masker),
  };
  try {
    return await runPipeline({
      source,
      sink,
      transform,
      log,
      follow: config.follow,
      concurrency: config.concurrency,
      connections: config.dbPoolSize,
      maxBackoffMs: config.maxBackoffMs,
      ...(vault ? { vault } : {}),
      ...(opts.stop ? { stop: opts.stop } : {}),
      ...(opts.progressEveryMs !== undefined ? { progressEveryMs: opts.progressEveryMs } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
  } finally {
    source.close();
    await sink.close().catch((err) =>
      log.warn("closing the database pool failed", { error: errorMessage(err) })
    );
  }
}
