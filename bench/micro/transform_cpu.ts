/**
 * CPU time per message of the transform (parse + validate + mask + encode), from process.cpuUsage(): on a
 * shared machine wall time (what `deno bench` reports) counts the time other processes held the core;
 * CPU time does not. Realistic messages (bench/synthetic.ts, as `deno task bench` seeds them), repeating
 * ones and ones whose every value is new.
 *
 *   deno run bench/micro/transform_cpu.ts
 */
import process from "node:process";
import { createMasker } from "../../lib/transform/mask.ts";
import { toRecordSync } from "../../lib/transform/record.ts";
import type { Message } from "../../lib/types.ts";
import { realistic } from "../synthetic.ts";

const N = 200_000;
const masker = createMasker("bench-only-key-0123456789abcdef0123456789abcdef");

function messages(n: number, pool: number): Message[] {
  return Array.from({ length: n }, (_, i) => {
    const ip = i % pool;
    return {
      id: `m-${i}`,
      receiptHandle: "r",
      body: JSON.stringify({
        user_id: `424cdd21-063a-43a7-b91b-${String(i).padStart(12, "0")}`,
        app_version: ["2.3.0", "0.96", "3.7"][i % 3],
        device_type: i % 2 === 0 ? "android" : "ios",
        ip: `${10 + (ip >> 16)}.${(ip >> 8) & 255}.${ip & 255}.${(ip * 7) & 255}`,
        locale: ["RU", "US", null][i % 3],
        device_id: `${String(ip % 1000).padStart(3, "0")}-${String(ip % 97).padStart(2, "0")}-${ip}`,
      }),
      sentTimestamp: 1_700_000_000_000,
      receiveCount: 1,
    };
  });
}

/** What `deno task bench` seeds: returning users with their devices and mostly their home IPs, 1% bad. */
function realisticMessages(n: number): Message[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `m-${i}`,
    receiptHandle: "r",
    body: realistic(i, { seed: 7 }).body,
    sentTimestamp: 1_700_000_000_000,
    receiveCount: 1,
  }));
}

let sink = 0;
for (
  const [label, list] of [
    ["realistic (deno task bench's messages, 1% bad)", realisticMessages(N)],
    ["repeating (500 addresses)", messages(20_000, 500)],
    ["every value new", messages(N, 1 << 30)],
  ] as const
) {
  for (let round = 0; round < 3; round++) {
    const before = process.cpuUsage();
    for (let i = 0; i < N; i++) sink += JSON.stringify(toRecordSync(list[i % list.length], masker)).length;
    const used = process.cpuUsage(before);
    const us = (used.user + used.system) / N;
    if (round === 2) {
      console.log(
        `${label}: ${us.toFixed(2)} µs CPU per message = ${Math.round(1e6 / us)} messages/s on one core`,
      );
    }
  }
}
if (sink === 0) console.log(sink);
