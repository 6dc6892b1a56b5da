/**
 * The assertions the tests use, in denoland/std's names, over node:assert (JSR is out of reach here).
 */
import assertNode from "node:assert/strict";

export function assert(cond: unknown, msg?: string): asserts cond {
  assertNode.ok(cond, msg);
}
export function assertEquals<T>(actual: unknown, expected: T, msg?: string): void {
  assertNode.deepStrictEqual(actual, expected, msg);
}
/** `actual` within `tolerance` of `expected` (denoland/std's assertAlmostEquals, with the tolerance given). */
export function assertAlmostEquals(actual: number, expected: number, tolerance: number, msg?: string): void {
  assertNode.ok(
    Math.abs(actual - expected) <= tolerance,
    msg ?? `${actual} is not within ${tolerance} of ${expected}`,
  );
}
export function assertMatch(actual: string, re: RegExp, msg?: string): void {
  assertNode.match(actual, re, msg);
}
function checkError(err: unknown, ctor?: new (...a: never[]) => Error, includes?: string): Error {
  if (ctor) assertNode.ok(err instanceof ctor, `expected ${ctor.name}, got ${(err as Error)?.name}`);
  if (includes) {
    assertNode.ok(
      (err as Error).message.includes(includes),
      `"${(err as Error).message}" lacks "${includes}"`,
    );
  }
  return err as Error;
}
export function assertThrows(
  fn: () => unknown,
  ctor?: new (...a: never[]) => Error,
  includes?: string,
): Error {
  try {
    fn();
  } catch (err) {
    return checkError(err, ctor, includes);
  }
  throw new assertNode.AssertionError({ message: "expected a throw" });
}
export async function assertRejects(
  fn: () => Promise<unknown>,
  ctor?: new (...a: never[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return checkError(err, ctor, includes);
  }
  throw new assertNode.AssertionError({ message: "expected a rejection" });
}
