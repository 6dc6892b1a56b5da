/**
 * One detector of IP addresses in free text, for every place where masq keeps producer text in the clear:
 * the columns `user_id`, `device_type` and `locale`, the values a redacted body keeps, and reasons.
 *
 * The text is first read the way a person (or a lenient parser) would read it: NFKC (fullwidth digits,
 * U+2024 ONE DOT LEADER and U+FF0E become ASCII), lowercased, tag characters (U+E0020..U+E007E) read as
 * the ASCII they shadow, control, format and other invisible characters dropped (`\p{Cc}`, `\p{Cf}`,
 * nonspacing and enclosing marks, default-ignorable code points: U+200B, U+2060, U+FEFF, U+00AD, variation
 * selectors), dot-like and colon-like characters mapped to `.` and `:` (U+3002, U+00B7, U+066B,
 * U+2236, ...), and every Unicode decimal digit (`\p{Nd}`: Arabic-Indic, Devanagari, Thai, ...) mapped to
 * its ASCII digit. Then an address is looked for anywhere in it, not only as the whole value:
 *
 * - IPv4, dotted, in any spelling inet_aton(3) accepts: each part decimal, octal (leading `0`) or hex
 *   (`0x`), a leading-zero part also read as decimal; a trailing dot, a port, a prefix or surrounding text
 *   change nothing. Four parts each at most 255 are an address (in a longer dotted run, any four
 *   consecutive such parts). Fewer parts are inet_aton's short forms, `a.b.c` (a 16-bit last part) and
 *   `a.b` (a 24-bit one), and count only when a part is hex or the last part is larger than 255 (too large
 *   for a version component): so versions such as `14.2` or `2.3.0` are not addresses, `203.0.29036` and
 *   `203.7340032` are.
 * - IPv4 written as one integer (decimal, octal or hex): only a standalone number (neither neighbour a
 *   letter or digit, not part of a dotted run) whose value lies in [2^24, 2^32); a smaller one maps into
 *   0.0.0.0/8, which holds no host. So a pure-numeric `3405803881` or `0xCB00716A` is an address and
 *   `u3405803881` is not. A segment of a UUID (8-4-4-4-12 hex digits) is never one.
 * - IPv6: any run of hex digits and colons holding a substring an IPv6 parser reads as an address
 *   (compressed or not, with an IPv4 tail, a zone id, brackets, a port or a prefix around it), as long as
 *   it has a decimal digit or three groups (so `std::vector` is not one) and is not all two-digit groups
 *   (MAC and EUI-64 notation). A MAC address (six groups) and a time (`12:30:45`) are no IPv6 address.
 *
 * A dotted run is read whole, from its first digit (so `9203.0.113.28` is no address: no parser reads it as
 * one). Out of scope: encodings no address parser reads (digits split by spaces or dashes, base64, words,
 * letters that look like digits). Most values are short ASCII text without dots, colons or long digit runs,
 * and those are answered by one pass over their characters.
 *
 * @module
 */

/** What findAddress() found: a phrase for a reason ("device_type holds <kind>, ..."), never the value. */
export type AddressKind =
  | "an IPv4 address"
  | "an IPv4 address with hex or octal parts"
  | "an IPv4 address in a short form (a.b.c or a.b)"
  | "an IPv4 address written as an integer"
  | "an IPv6 address";

/**
 * The kind of the first IP address found anywhere in `text`, in any spelling (see the module doc), or
 * null when there is none.
 *
 * @example
 * ```ts
 * import { findAddress } from "./address.ts";
 * findAddress("UA 203.0.113.109");  // "an IPv4 address"
 * findAddress("3405803881");        // "an IPv4 address written as an integer"
 * findAddress("http://[2001:db8::1]:8080/"); // "an IPv6 address"
 * findAddress("41e06f8f-2382-47ce-8733-ec3f76d5eb56"); // null
 * findAddress("iOS 14.2");          // null
 * ```
 */
export function findAddress(text: string): AddressKind | null {
  if (!worthScanning(text)) return null;
  const s = addressText(text);
  return (s.includes(":") && hasIpv6(s)) ? "an IPv6 address" : findIpv4(s);
}

/**
 * Whether `text` can hold an address at all: not when it is a UUID, or printable ASCII without a dot, a colon,
 * `0x` or a run of eight digits (the smallest integer-form address, 2^24, has eight). One pass, no allocation.
 */
function worthScanning(text: string): boolean {
  if (isUuid(text)) return false;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (++digits >= 8) return true;
      continue;
    }
    digits = 0;
    if (c === 46 || c === 58 || c >= 128 || c < 32) return true;
    if ((c === 120 || c === 88) && i > 0 && text.charCodeAt(i - 1) === 48) return true;
  }
  return false;
}

/** Whether `text` is one UUID (8-4-4-4-12 hex digits), the usual user id: no dot, colon or integer address. */
function isUuid(text: string): boolean {
  if (text.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = text.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false;
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) {
      return false;
    }
  }
  return true;
}

/** Characters dropped before reading: invisible ones, which a reader does not see between two digits. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Mn}\p{Me}\p{Default_Ignorable_Code_Point}]/gu;
/** Unicode's invisible copies of printable ASCII (U+E0020..U+E007E, "tag" characters). */
const TAGS = /[\u{e0020}-\u{e007e}]/gu;
/** Dot-like characters NFKC leaves alone (full stops, middle dots, leaders, decimal separators). */
const DOTS =
  /[\u00b7\u0387\u0589\u06d4\u066b\u0701\u0702\u0964\u0965\u1362\u166e\u16eb\u1803\u1809\u2022\u2027\u2219\u22c5\u2e31\u2e33\u2e3c\u3002\u30fb\ua4ff\ua60e\ua6f3]/g;
/** Colon-like characters NFKC leaves alone. */
const COLONS = /[\u02d0\u02f8\u05c3\u0703\u0704\u16ec\u1804\u2236\ua789]/g;
const DIGIT = /\p{Nd}/gu;
const ND = /^\p{Nd}$/u;
/** Anything but printable ASCII: such text is normalised before it is read. */
const NOT_PRINTABLE = /[^ -~]/;

/**
 * `text` as findAddress() reads it: NFKC, lowercase, tag characters as the ASCII they shadow, invisible
 * characters dropped, dot-like and colon-like characters as `.` and `:`, decimal digits of every script as
 * ASCII digits.
 *
 * @example
 * ```ts
 * import { addressText } from "./address.ts";
 * addressText("２０３\u200b\u2024０.١١٣.1"); // "203.0.113.1"
 * ```
 */
export function addressText(text: string): string {
  if (!NOT_PRINTABLE.test(text)) return text.toLowerCase();
  return text.normalize("NFKC").toLowerCase()
    .replace(TAGS, (t) => String.fromCharCode(t.codePointAt(0)! - 0xe0000))
    .replace(INVISIBLE, "").replace(DOTS, ".").replace(COLONS, ":").replace(DIGIT, asciiDigit);
}

const digitCache = new Map<number, string>();

/**
 * The ASCII digit of a decimal digit of any script. Unicode encodes decimal digits in runs of ten, 0 to 9,
 * and adjacent runs are whole: the value is the distance from the start of the run, modulo ten.
 */
function asciiDigit(d: string): string {
  const cp = d.codePointAt(0)!;
  if (cp < 128) return d;
  let out = digitCache.get(cp);
  if (out === undefined) {
    let start = cp;
    while (ND.test(String.fromCodePoint(start - 1))) start--;
    out = String((cp - start) % 10);
    if (digitCache.size < 1024) digitCache.set(cp, out);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// IPv4

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
}

const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

/** Whether the character at `i` is a letter or a digit (false outside the text). */
function alnumAt(s: string, i: number): boolean {
  if (i < 0 || i >= s.length) return false;
  const c = s.charCodeAt(i);
  if (c < 128) return isDigit(c) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
  return LETTER_OR_DIGIT.test(s[i]);
}

/** One part of a dotted form, with the smallest and largest value its spellings may be read as. */
interface Part {
  low: number;
  high: number;
  /** Hex (`0x..`) or with a leading zero (octal to inet_aton, decimal to others). */
  unusual: boolean;
  hex: boolean;
}

/** Reads the part starting at `i` (a digit), returning it and where it ends. */
function readPart(s: string, i: number): [Part, number] {
  if (s.charCodeAt(i) === 48 && s.charCodeAt(i + 1) === 120 && isHexDigit(s.charCodeAt(i + 2))) {
    let j = i + 2;
    while (j < s.length && isHexDigit(s.charCodeAt(j))) j++;
    const value = hexValue(s.slice(i + 2, j));
    return [{ low: value, high: value, unusual: true, hex: true }, j];
  }
  let j = i;
  while (j < s.length && isDigit(s.charCodeAt(j))) j++;
  const digits = s.slice(i, j);
  const decimal = numberValue(digits, 10);
  if (digits.length > 1 && digits[0] === "0") {
    const octal = /^[0-7]+$/.test(digits) ? numberValue(digits, 8) : decimal;
    return [{ low: Math.min(decimal, octal), high: Math.max(decimal, octal), unusual: true, hex: false }, j];
  }
  return [{ low: decimal, high: decimal, unusual: false, hex: false }, j];
}

/** The value of a digit string, Infinity when it is far beyond 32 bits (hostile lengths cost nothing). */
function numberValue(digits: string, radix: 8 | 10): number {
  const significant = digits.replace(/^0+/, "");
  if (significant.length > 12) return Infinity;
  return significant === "" ? 0 : parseInt(significant, radix);
}

function hexValue(digits: string): number {
  const significant = digits.replace(/^0+/, "");
  if (significant.length > 10) return Infinity;
  return significant === "" ? 0 : parseInt(significant, 16);
}

const UUID = /(?<![0-9a-z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-z])/g;

/** Whether [from, to) of `s` lies inside a UUID. */
function insideUuid(s: string, from: number, to: number): boolean {
  if (!s.includes("-")) return false;
  for (const m of s.matchAll(UUID)) {
    if (m.index <= from && to <= m.index + m[0].length) return true;
  }
  return false;
}

/** The first IPv4 address in a normalised text, in any of inet_aton's spellings, or null. */
function findIpv4(s: string): AddressKind | null {
  for (let i = 0; i < s.length; i++) {
    if (!isDigit(s.charCodeAt(i))) continue;
    // A dotted run: parts joined by single dots, a trailing dot allowed.
    const start = i;
    const parts: Part[] = [];
    let end = i;
    for (;;) {
      const [part, next] = readPart(s, end);
      parts.push(part);
      end = next;
      if (s.charCodeAt(end) !== 46 || !isDigit(s.charCodeAt(end + 1))) break;
      end++;
    }
    const kind = parts.length === 1
      ? (!alnumAt(s, start - 1) && !alnumAt(s, end) && integerAddress(parts[0]) && !insideUuid(s, start, end)
        ? "an IPv4 address written as an integer"
        : null)
      : dottedAddress(parts);
    if (kind !== null) return kind;
    i = end;
  }
  return null;
}

const TWO_24 = 2 ** 24;
const TWO_32 = 2 ** 32;

function integerAddress(p: Part): boolean {
  return (p.low >= TWO_24 && p.low < TWO_32) || (p.high >= TWO_24 && p.high < TWO_32);
}

function dottedAddress(parts: Part[]): AddressKind | null {
  const n = parts.length;
  if (n >= 4) {
    for (let w = 0; w + 4 <= n; w++) {
      const quad = parts.slice(w, w + 4);
      if (quad.every((p) => p.low <= 255)) {
        return quad.some((p) => p.unusual) ? "an IPv4 address with hex or octal parts" : "an IPv4 address";
      }
    }
    return null;
  }
  const last = parts[n - 1];
  const lastMax = n === 3 ? 0xffff : 0xffffff;
  const fits = parts.slice(0, -1).every((p) => p.low <= 255) && last.low <= lastMax;
  return fits && (last.high > 255 || parts.some((p) => p.hex))
    ? "an IPv4 address in a short form (a.b.c or a.b)"
    : null;
}

// ---------------------------------------------------------------------------------------------------------
// IPv6

function isHexOrColon(c: number): boolean {
  return isHexDigit(c) || c === 58;
}

/** Whether a normalised text holds an IPv6 address: each maximal run of hex digits and colons is tried. */
function hasIpv6(s: string): boolean {
  for (let i = s.indexOf(":"); i !== -1; i = s.indexOf(":", i)) {
    let a = i;
    while (a > 0 && isHexOrColon(s.charCodeAt(a - 1))) a--;
    let b = i;
    while (b < s.length && isHexOrColon(s.charCodeAt(b))) b++;
    if (runHasIpv6(s.slice(a, b).split(":"))) return true;
    i = b;
  }
  return false;
}

/**
 * Whether some substring of a run (given as its pieces between colons) is an IPv6 address in hex groups:
 * a window of pieces whose inner pieces are groups (1..4 hex digits) or the one empty piece of `::`, and
 * whose edge pieces may be cut to a group or to nothing (so text glued to an address does not hide it).
 */
function runHasIpv6(pieces: string[]): boolean {
  if (pieces.length < 3) return false;
  for (let a = 0; a < pieces.length - 2; a++) {
    for (let b = a + 2; b < pieces.length && b - a <= 8; b++) {
      if (windowIsIpv6(pieces, a, b)) return true;
      // A piece too long for a group cannot be inside a window.
      if (pieces[b].length > 4) break;
    }
  }
  return false;
}

function windowIsIpv6(pieces: string[], a: number, b: number): boolean {
  const first = pieces[a];
  const last = pieces[b];
  for (const head of first === "" ? [""] : [first.slice(-4), ""]) {
    for (const tail of last === "" ? [""] : [last.slice(0, 4), ""]) {
      const groups = [head, ...pieces.slice(a + 1, b), tail];
      if (groupsAreIpv6(groups)) return true;
    }
  }
  return false;
}

/** The hex-group grammar of RFC 4291 section 2.2 (forms 1 and 2), plus masq's two exclusions. */
function groupsAreIpv6(groups: string[]): boolean {
  const k = groups.length - 1;
  const empty: number[] = [];
  for (let i = 0; i <= k; i++) {
    if (groups[i] === "") empty.push(i);
    else if (groups[i].length > 4) return false;
  }
  let count: number;
  if (empty.length === 0) {
    if (k !== 7) return false;
    // MAC-style notation (EUI-64): eight two-digit groups.
    if (groups.every((g) => g.length === 2)) return false;
    count = 8;
  } else if (empty.length === 1 && empty[0] > 0 && empty[0] < k) {
    count = k;
  } else if (
    empty.length === 2 && ((empty[0] === 0 && empty[1] === 1) || (empty[0] === k - 1 && empty[1] === k))
  ) {
    count = k - 1;
  } else {
    return false;
  }
  if (count > 7 && empty.length > 0) return false;
  return count >= 3 || groups.some((g) => /\d/.test(g));
}
