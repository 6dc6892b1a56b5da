/**
 * CPU time per message of the transform with each way of keeping originals: none, the old symmetric vault
 * key (AES-256-GCM per entry) and the sealed vault (AES-256-GCM per distinct (value, person) under the
 * person's data key of the epoch, its seal reused after that; per person new in the epoch a data key made,
 * wrapped and MACed; one HPKE encapsulation per epoch). On `deno task bench`'s realistic messages
 * (returning users, 1% bad) and on messages whose every value and person is new (the worst case: two seals
 * and one new data key per message). The key store is kept in memory here, so the figures are CPU only; the
 * sealed vault also inserts its new data keys into the key store (one statement per batch of messages),
 * which `deno task bench` shows in its throughput.
 *
 *   deno run bench/micro/vault_cpu.ts
 */
import process from "node:process";
import { createMasker } from "../../lib/transform/mask.ts";
import { toRecord } from "../../lib/transform/record.ts";
import type { Message } from "../../lib/types.ts";
import type { SubjectKey, SubjectKeyStore } from "../../lib/keystore.ts";
import { generateOfficerKeys, parseOfficerPublicKey, sealMacKey } from "../../lib/seal.ts";
import { newSubjectKey, openEpoch } from "../../lib/subject_keys.ts";
import { createSealingVault } from "../../lib/sealing.ts";
import { createVaultCipher, type IngestVault } from "../../lib/vault.ts";
import { realistic } from "../synthetic.ts";

const HMAC_KEY = "bench-only-key-0123456789abcdef0123456789abcdef";
const masker = createMasker(HMAC_KEY);
const officer = await parseOfficerPublicKey((await generateOfficerKeys()).publicText, "bench");
const macKey = sealMacKey(HMAC_KEY);

/**
 * The key store in memory: what ingest does on a miss (make a data key, wrap it under the epoch, MAC it).
 * Each list opens its own epoch (one HPKE encapsulation), as a process does at start.
 */
function memoryKeyStore(): SubjectKeyStore & { made: () => number } {
  const keys = new Map<string, Promise<SubjectKey>>();
  const epoch = openEpoch(officer);
  return {
    made: () => keys.size,
    keyFor(subject) {
      let k = keys.get(subject);
      if (k === undefined) {
        k = epoch.then((e) => newSubjectKey(subject, e, macKey)).then((m) => ({
          recipient: `s:${m.row.keyId}`,
          dataKey: m.dataKey,
        }));
        keys.set(subject, k);
      }
      return k;
    },
  };
}

const message = (i: number, body: string): Message => ({
  id: `m-${i}`,
  receiptHandle: "r",
  body,
  sentTimestamp: 1_700_000_000_000,
  receiveCount: 1,
});
const realisticList = (n: number) =>
  Array.from({ length: n }, (_, i) => message(i, realistic(i, { seed: 7 }).body));
/** A steady state: 98% of logins by 10,000 returning users (their devices, mostly their home IPs). */
const returningList = (n: number) =>
  Array.from({ length: n }, (_, i) => message(i, realistic(i, { seed: 7, returningRate: 0.98 }).body));
const allNew = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    message(
      i,
      JSON.stringify({
        user_id: `424cdd21-063a-43a7-b91b-${String(i).padStart(12, "0")}`,
        app_version: "2.3.0",
        device_type: "android",
        ip: `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.7`,
        locale: "US",
        device_id: `dev-${i}`,
      }),
    ));

let sink = 0;
async function cpuPerMessage(list: Message[], vault: IngestVault | undefined): Promise<number> {
  const before = process.cpuUsage();
  for (const m of list) sink += JSON.stringify(await toRecord(m, masker, vault)).length;
  const used = process.cpuUsage(before);
  return (used.user + used.system) / list.length;
}

for (
  const [label, make, n] of [
    ["realistic (deno task bench's messages)", realisticList, 50_000],
    ["98% returning users", returningList, 50_000],
    ["every value new", allNew, 5_000],
  ] as const
) {
  const list = make(n);
  await cpuPerMessage(list.slice(0, 2_000), undefined); // warm up
  const none = await cpuPerMessage(list, undefined);
  const aes = await cpuPerMessage(
    list,
    await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v1"),
  );
  const store = memoryKeyStore();
  const sealing = createSealingVault({ officer, subjects: store, macKey, hmacKeyId: "k1" });
  const sealed = await cpuPerMessage(list, sealing);
  console.log(
    `${label} (${n} messages): no vault ${none.toFixed(1)} µs/msg, symmetric vault ${
      aes.toFixed(1)
    } µs/msg, ` +
      `sealed vault ${sealed.toFixed(1)} µs/msg CPU; ${store.made()} subject keys made (key store rows)`,
  );
}
if (sink === 0) console.log(sink);
