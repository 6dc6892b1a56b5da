/**
 * masq as the benchmark measures it: what `runMasq()` (the function behind `masq run`) does, at its default
 * settings, given only the queue URL, the database URL and the key, logging as `masq run` does. A process
 * of its own, started by bench/runner.ts with the permissions of `deno task start`; settings and report
 * over stdin/stdout (bench/measure.ts). With `profile`, V8's sampling CPU and heap profilers run from "go"
 * to the end; the CPU profile is written to that path and the heap profile beside it (Chrome DevTools'
 * .cpuprofile and .heapprofile formats, bench/profile.ts). With `ablate`, those parts are swapped for
 * stand-ins (bench/ablation.ts) between opening them and running the pipeline over them.
 *
 * @module
 */
import { configFromFlags } from "../lib/config.ts";
import { secretsOf } from "../lib/secrets.ts";
import { createLogger } from "../lib/log.ts";
import { openParts, runParts } from "../lib/masq.ts";
import { generateOfficerKeys, parseOfficerPublicKey } from "../lib/seal.ts";
import { createVaultCipher } from "../lib/vault.ts";
import type { PipelineEvent } from "../lib/types.ts";
import { ablate, type Ablation } from "./ablation.ts";
import { createMeter, handshake } from "./measure.ts";
import { saveProfile, startProfiler } from "./profile.ts";

/** The masq child's settings. */
export interface MasqSettings {
  queueUrl: string;
  databaseUrl: string;
  hmacKey: string;
  /** Where to write a CPU profile of the run; none when absent. */
  profile?: string;
  /** Parts taken out of this run (`deno task bench --ablate`); none when absent. */
  ablate?: Ablation[];
  /** Keep originals (`deno task bench --vault`): under a random symmetric key, or sealed to a fresh key pair. */
  vault?: "symmetric" | "sealed";
}

const { settings, ready } = await handshake<MasqSettings>();
const config = configFromFlags(
  { "queue-url": settings.queueUrl, "database-url": settings.databaseUrl },
  settings.hmacKey,
);
const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets: secretsOf(config) });
const meter = createMeter();
const onEvent = (e: PipelineEvent) => {
  if (e.type === "deleted") meter.deleted(e.messages, e.latenciesMs);
};
const ablations = settings.ablate ?? [];

await ready();
const profiler = settings.profile ? await startProfiler() : undefined;
meter.start();
// What runMasq() does, with the parts `ablate` names swapped for their stand-ins before the pipeline starts.
const parts = await openParts(config, {
  log,
  ...(settings.vault === "symmetric"
    ? { vault: await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v1") }
    : {}),
  // The key store in the bench's own database (the default): one round trip per new person.
  ...(settings.vault === "sealed"
    ? {
      sealed: {
        officer: await parseOfficerPublicKey((await generateOfficerKeys()).publicText, "bench"),
        keystoreUrl: settings.databaseUrl,
      },
    }
    : {}),
});
let summary;
try {
  summary = await runParts(config, { ...parts, ...ablate(parts, ablations) }, { log, onEvent });
} finally {
  await parts.close();
}
const report = meter.report({ summary }, summary.received);
if (profiler && settings.profile) {
  report.extra = { ...report.extra, profile: await saveProfile(profiler, settings.profile) };
}
console.log(JSON.stringify(report));
// As `masq run` does (main.ts): whatever handle is still open must not hold the process.
Deno.exit(0);
