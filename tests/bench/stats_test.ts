import { assert, assertEquals } from "../support/assert.ts";
import { median, percentile, round } from "../../bench/stats.ts";

Deno.test("median() takes the middle value, or the mean of the middle two", () => {
  assertEquals(median([5, 1, 3]), 3);
  assertEquals(median([3, 1, 2, 10]), 2.5);
  assert(Number.isNaN(median([])));
});

Deno.test("percentile() is the nearest rank of sorted values", () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assertEquals(percentile(xs, 50), 50);
  assertEquals(percentile(xs, 99), 99);
  assertEquals(percentile(xs, 100), 100);
  assertEquals(percentile([7], 99), 7);
  assertEquals(percentile([], 50), null);
});

Deno.test("round() keeps the given decimals", () => {
  assertEquals(round(1234.5678, 2), 1234.57);
  assertEquals(round(0.5), 1);
});
