/**
 * `app_version` is stored as an integer that keeps every version apart and sorts like versions do:
 * `major * 1_000_000 + minor * 1_000 + patch`. The SQL function `app_version_text(integer)` turns it back.
 */

const PATTERN = /^(\d{1,4})(?:\.(\d{1,3}))?(?:\.(\d{1,3}))?$/;
/** The largest major that keeps the packed value inside a PostgreSQL `integer`. */
export const MAX_MAJOR = 2146;

/**
 * Packs "M", "M.m" or "M.m.p" (each part 0..999, major 0..2146) into one integer, or throws a RangeError
 * saying what was expected (never quoting the value: the message becomes a stored rejection reason).
 *
 * @example
 * ```ts
 * packAppVersion("2.3.0"); // 2003000
 * packAppVersion("0.96");  // 96000
 * packAppVersion("3.7");   // 3007000
 * ```
 */
export function packAppVersion(text: string): number {
  const m = PATTERN.exec(text.trim());
  if (!m || (m[3] !== undefined && m[2] === undefined)) {
    throw new RangeError(
      'app_version is not "M", "M.m" or "M.m.p" with numeric parts (each 0..999)',
    );
  }
  const major = Number(m[1]);
  const minor = m[2] === undefined ? 0 : Number(m[2]);
  const patch = m[3] === undefined ? 0 : Number(m[3]);
  if (major > MAX_MAJOR) {
    throw new RangeError(`app_version has a major version above ${MAX_MAJOR}, which does not fit an integer`);
  }
  return major * 1_000_000 + minor * 1_000 + patch;
}

/**
 * The text form of a packed version, always "M.m.p"; the same as SQL `app_version_text(integer)`.
 *
 * @example
 * ```ts
 * unpackAppVersion(96000); // "0.96.0"
 * ```
 */
export function unpackAppVersion(packed: number): string {
  if (!Number.isInteger(packed) || packed < 0) {
    throw new RangeError("packed app_version is not a non-negative integer");
  }
  return `${Math.floor(packed / 1_000_000)}.${Math.floor(packed / 1_000) % 1_000}.${packed % 1_000}`;
}
