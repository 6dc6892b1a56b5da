import { assert, assertEquals } from "../support/assert.ts";
import { isBadIndex, realistic, synthetic } from "../../bench/synthetic.ts";
import { parseBody } from "../../lib/transform/parse.ts";

Deno.test("realistic() is deterministic in (seed, index) and differs across seeds", () => {
  for (const i of [0, 1, 999, 123_456]) {
    assertEquals(realistic(i, { seed: 7 }), realistic(i, { seed: 7 }));
  }
  const a = Array.from({ length: 50 }, (_, i) => realistic(i, { seed: 1 }).body);
  const b = Array.from({ length: 50 }, (_, i) => realistic(i, { seed: 2 }).body);
  assert(a.every((body, i) => body !== b[i]), "another seed gives other messages");
});

Deno.test("realistic() marks exactly the bodies masq rejects as bad, about badRate of them", () => {
  const n = 20_000;
  let bad = 0;
  const reasons = new Set<string>();
  for (let i = 0; i < n; i++) {
    const m = realistic(i, { seed: 3 });
    const parsed = parseBody(m.body);
    assertEquals(parsed.ok, !m.bad, `message ${i}: ${m.body}`);
    if (!parsed.ok) {
      bad++;
      reasons.add(parsed.reason.replace(/\(.*\)|\d+/g, ""));
    }
  }
  assert(bad > n * 0.007 && bad < n * 0.013, `${bad} bad of ${n}, expected about 1%`);
  assert(reasons.size >= 6, `varied kinds of bad input, got ${[...reasons].join(" | ")}`);
  const none = Array.from({ length: 2000 }, (_, i) => realistic(i, { badRate: 0 })).filter((m) => m.bad);
  assertEquals(none.length, 0);
});

Deno.test("realistic() repeats ips and device ids like real traffic, with uuid user ids", () => {
  const n = 20_000;
  const ips = new Map<string, number>();
  const devices = new Set<string>();
  const users = new Set<string>();
  let good = 0;
  let v6 = 0;
  for (let i = 0; i < n; i++) {
    const m = realistic(i, { seed: 5, badRate: 0 });
    const parsed = parseBody(m.body);
    assert(parsed.ok);
    good++;
    const f = parsed.fields;
    assert(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(f.userId), f.userId);
    assert(f.deviceId !== null && /^\d{3}-\d{2}-\d{4}$/.test(f.deviceId), String(f.deviceId));
    if (f.ip!.includes(":")) v6++;
    ips.set(f.ip!, (ips.get(f.ip!) ?? 0) + 1);
    devices.add(f.deviceId!);
    users.add(f.userId);
  }
  // Half the logins come from returning users: many values repeat, the busiest ones a lot.
  assert(devices.size < good * 0.8 && devices.size > good * 0.4, `${devices.size} distinct device ids`);
  assert(ips.size < good * 0.85 && ips.size > good * 0.4, `${ips.size} distinct ips`);
  assertEquals(users.size, devices.size, "one device per user");
  assert(Math.max(...ips.values()) > 50, "a few users log in very often");
  assert(v6 > n * 0.05 && v6 < n * 0.15, `${v6} IPv6 addresses`);
});

Deno.test("synthetic() keeps its indexed user ids and every badEvery-th body bad", () => {
  for (let i = 0; i < 300; i++) {
    const parsed = parseBody(synthetic(i, 100));
    assertEquals(parsed.ok, !isBadIndex(i, 100));
    if (parsed.ok) assertEquals(parsed.fields.userId, `user-${i}`);
  }
});
