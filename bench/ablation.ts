/**
 * `deno task bench --ablate`: masq with parts taken out, to see what each part costs inside a real run rather
 * than alone in a micro-benchmark, where the server's work and the competition for the cores are missing.
 * The bench swaps masq and its ablated runs every other round, so that the order of the runs does not read
 * as the cost of a part. Diagnosis only: `masq run` never takes anything out, and an ablated run's rows
 * are checked to be what the stand-in writes (none, or one fixed row per message), not the real ones.
 *
 * @module
 */
import type { Message, Sink, SinkRecord, Transform, WriteResult } from "../lib/types.ts";

/** What `--ablate` can take out: the database write, or the parse/validate/mask step. */
export type Ablation = "sink" | "transform";
export const ABLATIONS: readonly Ablation[] = ["sink", "transform"];

/** The parts of a run an ablation replaces. */
export interface Parts<S extends Sink = Sink> {
  sink: S;
  transform: Transform;
}

function countOf(records: readonly SinkRecord[]): WriteResult {
  const inserted = records.filter((r) => r.kind === "login").length;
  return { inserted, rejected: records.length - inserted, duplicates: 0 };
}

/**
 * The sink without its writes: every batch is answered at once as if each record were committed fresh,
 * and nothing reaches the database (the rest of the sink, its pool and schema check included, stays).
 */
export function withoutWrites<S extends Sink>(sink: S): S {
  return {
    ...sink,
    writeBatches: (batches) => Promise.resolve(batches.map(countOf)),
  };
}

/**
 * A transform that neither parses nor masks: every message becomes the same valid login row, under its own
 * message id (so the ledger still sees one row per message).
 *
 * @example
 * ```ts
 * import { fixedTransform } from "./ablation.ts";
 * const record = await fixedTransform.record({ id: "m1", receiptHandle: "r", body: "not even JSON", sentTimestamp: 0, receiveCount: 1 });
 * console.log(record.kind, record.messageId); // "login" "m1"
 * ```
 */
export const fixedTransform: Transform = {
  record: (m: Message): SinkRecord => ({
    kind: "login",
    messageId: m.id,
    userId: "ablated",
    deviceType: null,
    maskedIp: null,
    maskedDeviceId: null,
    locale: null,
    appVersion: null,
    createDate: "2024-01-01",
  }),
  rejection: (m: Message, reason: string) => ({
    kind: "rejection",
    messageId: m.id,
    reason,
    bodyRedacted: null,
  }),
};

/**
 * The run's parts with `ablations` taken out (none: the parts as they are).
 *
 * @example
 * ```ts
 * import { ablate } from "./ablation.ts";
 * import type { Sink, Transform } from "../lib/types.ts";
 * declare const parts: { sink: Sink; transform: Transform };
 * const { sink } = ablate(parts, ["sink"]);
 * console.log(await sink.writeBatches([[]])); // [{ inserted: 0, rejected: 0, duplicates: 0 }]
 * ```
 */
export function ablate<S extends Sink>(parts: Parts<S>, ablations: readonly Ablation[]): Parts<S> {
  return {
    sink: ablations.includes("sink") ? withoutWrites(parts.sink) : parts.sink,
    transform: ablations.includes("transform") ? fixedTransform : parts.transform,
  };
}

/**
 * Parses `--ablate`'s value: a comma-separated list of ABLATIONS, each at most once, in the order they are
 * to be taken out (the bench measures masq without the first, then without the first two, and so on).
 * Returns an error message instead of throwing, for the command to wrap.
 */
export function parseAblations(text: string): Ablation[] | string {
  const parts = text.split(",").map((p) => p.trim());
  const unknown = parts.filter((p) => !(ABLATIONS as readonly string[]).includes(p));
  if (unknown.length > 0) return `${JSON.stringify(text)}: expected a list of ${ABLATIONS.join(", ")}`;
  if (new Set(parts).size !== parts.length) return `${JSON.stringify(text)} names a part twice`;
  return parts as Ablation[];
}
