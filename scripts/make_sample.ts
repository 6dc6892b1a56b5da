// Writes data/sample_logins.jsonl: 100 synthetic logins shaped like the take-home's queue.
// Deterministic (seeded), so the file is reproducible: deno run --allow-write=data scripts/make_sample.ts
let seed = 20261122;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
const hex = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join("");
const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-${pick(["8", "9", "a", "b"])}${hex(3)}-${hex(12)}`;
const num = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join("");
const versions = ["2.3.0", "0.96", "3.7", "0.2.9", "2.3.4", "5.0.2", "0.6", "1.2.1", "4.3.2", "3.7"];
const locales = ["RU", "US", "PH", "DE", "BR", "IN", "FR", "JP", "ID", "MX"];
const lines: string[] = [];
const users = Array.from({ length: 70 }, uuid);
for (let i = 0; i < 99; i++) {
  const ip = i % 25 === 7
    ? `2001:0DB8:${hex(4)}::${hex(2)}01`
    : `${1 + Math.floor(rnd() * 223)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.${
      1 + Math.floor(rnd() * 254)
    }`;
  const rec: Record<string, unknown> = {
    user_id: pick(users),
    app_version: pick(versions),
    device_type: pick(["android", "ios"]),
    ip,
    locale: i % 3 === 0 ? null : pick(locales),
    device_id: `${num(3)}-${num(2)}-${num(4)}`,
  };
  if (i % 10 === 4) rec.timestamp = 1_700_000_000 + Math.floor(rnd() * 50_000_000);
  lines.push(JSON.stringify(rec));
}
// The take-home's queue carries one message of the wrong shape.
lines.splice(42, 0, JSON.stringify({ foo: "oops_wrong_ip", bar: "123" }));
// A repeated login (same user, IP and device): its masked values match, which is the point of masking.
lines[60] = lines[10];
await Deno.writeTextFile("data/sample_logins.jsonl", lines.join("\n") + "\n");
