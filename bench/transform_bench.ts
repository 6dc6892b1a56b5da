/**
 * The transform's cost per message on one core: parse + validate + mask + encode (`toRecordSync`, then the
 * record as the JSON a sink would send), for login traffic that repeats addresses and devices and for
 * traffic where every value is new (the same cost: there is no token cache). Also the pieces: HMAC with the key set up
 * once (lib/transform/hmac.ts, @noble/hashes) vs node:crypto vs Web Crypto, the schema validation alone, and the
 * redaction of a rejected body.
 *
 *   deno bench --allow-read --allow-env bench/transform_bench.ts
 *
 * Each bench step handles BATCH messages, so messages/s = BATCH / (time per iteration).
 */
import { createHmac } from "node:crypto";
import { hmacSha256Hex } from "../lib/transform/hmac.ts";
import { createMasker } from "../lib/transform/mask.ts";
import { parseBody } from "../lib/transform/parse.ts";
import { redactBody } from "../lib/transform/redact.ts";
import { toRecordSync } from "../lib/transform/record.ts";
import type { Message } from "../lib/types.ts";

const KEY = "bench-only-key-0123456789abcdef0123456789abcdef";
const BATCH = 1000;
const VERSIONS = ["2.3.0", "0.96", "3.7", "0.2.9", "5.0.2", "1.12.100"];
const LOCALES = ["RU", "US", "PH", "DE", null];

function body(i: number, ipPool: number, devicePool: number): string {
  const ip = i % ipPool;
  const dev = i % devicePool;
  return JSON.stringify({
    user_id: `424cdd21-063a-43a7-b91b-${String(i).padStart(12, "0")}`,
    app_version: VERSIONS[i % VERSIONS.length],
    device_type: i % 2 === 0 ? "android" : "ios",
    ip: `${10 + (ip >> 16)}.${(ip >> 8) & 255}.${ip & 255}.${(ip * 7) & 255}`,
    locale: LOCALES[i % LOCALES.length],
    device_id: `${String(dev % 1000).padStart(3, "0")}-${String(dev % 97).padStart(2, "0")}-${dev}`,
  });
}

function messages(n: number, ipPool: number, devicePool: number): Message[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `m-${i}`,
    receiptHandle: "r",
    body: body(i, ipPool, devicePool),
    sentTimestamp: 1_700_000_000_000,
    receiveCount: 1,
  }));
}

// Repeating traffic: 500 addresses and 2,000 devices over 20,000 messages.
const repeating = messages(20 * BATCH, 500, 2000);
// Worst case: every address and device id is new, so every token is computed (40,000 HMACs per 20 batches).
const unique = messages(20 * BATCH, 1 << 30, 1 << 30);
const masker = createMasker(KEY);
let cursor = 0;
let sink = 0;

function run(list: Message[], m = masker): void {
  for (let i = 0; i < BATCH; i++) {
    const msg = list[cursor++ % list.length];
    sink += JSON.stringify(toRecordSync(msg, m)).length;
  }
}

Deno.bench("transform: parse+validate+mask+encode, repeating ips/devices", {
  group: "transform",
  baseline: true,
}, () => {
  run(repeating);
});

Deno.bench(
  "transform: parse+validate+mask+encode, every value new",
  { group: "transform" },
  () => {
    run(unique);
  },
);

Deno.bench("transform: parse+validate only", { group: "transform" }, () => {
  for (let i = 0; i < BATCH; i++) sink += parseBody(repeating[cursor++ % repeating.length].body).ok ? 1 : 0;
});

Deno.bench("transform: JSON.parse only", { group: "transform" }, () => {
  for (let i = 0; i < BATCH; i++) sink += JSON.parse(repeating[cursor++ % repeating.length].body).ip.length;
});

const texts = Array.from({ length: BATCH }, (_, i) => `ip:10.0.${i >> 8}.${i & 255}`);

const mac = hmacSha256Hex(new TextEncoder().encode(KEY));

Deno.bench(
  "hmac: lib/transform/hmac.ts (@noble/hashes, key set up once), 1000 tokens",
  { group: "hmac", baseline: true },
  () => {
    for (const t of texts) sink += mac(t).length;
  },
);

Deno.bench("hmac: node:crypto createHmac, 1000 tokens", { group: "hmac" }, () => {
  for (const t of texts) sink += createHmac("sha256", KEY).update(t).digest("hex").length;
});

const webKey = await crypto.subtle.importKey(
  "raw",
  new TextEncoder().encode(KEY),
  { name: "HMAC", hash: "SHA-256" },
  false,
  ["sign"],
);
const enc = new TextEncoder();

Deno.bench("hmac: Web Crypto subtle.sign, 1000 tokens", { group: "hmac" }, async () => {
  for (const t of texts) sink += (await crypto.subtle.sign("HMAC", webKey, enc.encode(t))).byteLength;
});

const rejected = {
  user_id: 5,
  IP: "199.172.111.135",
  user: { ip: "10.0.0.1", email: "someone@example.com" },
  device: [{ id: "593-47-5928" }],
  x_forwarded_for: "199.172.111.135, 10.0.0.1",
  locale: "RU",
};

Deno.bench("redact: one rejected body with nesting and arrays, 1000 times", { group: "redact" }, () => {
  for (let i = 0; i < BATCH; i++) sink += redactBody(rejected, masker, Date.now())!.length;
});

globalThis.addEventListener("unload", () => {
  if (sink === 42) console.log(sink); // keeps the work observable
});
