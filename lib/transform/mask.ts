/**
 * Pseudonymisation of the two personal fields. A token is `hex(HMAC-SHA-256(K, field + ":" + canonical))`:
 * deterministic (the same IP under the same key is always the same token, so analysts can still count
 * duplicates), keyed (without K nobody can brute-force the 2^32 IPv4 addresses back, unlike a bare SHA-256),
 * and domain-separated (an IP and a device id with the same text never share a token).
 *
 * Synchronous, with the key set up once (lib/transform/hmac.ts: cheaper than node:crypto's createHmac, and
 * no Web Crypto promise per token). No cache of tokens: on realistic login traffic a bounded cache cost
 * more than it saved (bench/micro/transform_cpu.ts; see bench/BENCHMARKS.md), because the strings it
 * keeps outlive the young generation and make every garbage collection dearer; and it kept raw addresses
 * in memory.
 *
 * @module
 */
import ipaddr from "ipaddr.js";
import { hmacSha256Hex } from "./hmac.ts";
import type { Masker } from "../types.ts";

export type { Masker } from "../types.ts";

/**
 * The canonical text of an IP address, so that one address gets one token however it is written:
 * trimmed; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, in any spelling) is its IPv4 address; any other
 * IPv6 address is in its RFC 5952 form (lowercase, longest zero run compressed) with its zone id
 * lowercased. Anything that is not an IPv6 address is returned trimmed and otherwise untouched.
 *
 * @example
 * ```ts
 * import { canonicalIp } from "./mask.ts";
 * canonicalIp(" 2001:0DB8:0:0:0:0:0:0001 "); // "2001:db8::1"
 * canonicalIp("::FFFF:199.172.111.135");      // "199.172.111.135"
 * canonicalIp("FE80::1%ETH0");                // "fe80::1%eth0"
 * ```
 */
export function canonicalIp(ip: string): string {
  const trimmed = ip.trim();
  if (!trimmed.includes(":")) return trimmed;
  const [written, zone] = splitZone(trimmed);
  // Hex groups and colons only, the way clients send addresses: read here, cheaper than through ipaddr.js
  // (see bench/BENCHMARKS.md). Anything else (a dotted tail, an invalid spelling) ipaddr.js decides; a
  // property test holds the two to the same answers.
  const groups = hexGroups(written);
  if (groups !== undefined) return withZone(rfc5952(groups), zone);
  // ipaddr.js reads every dotted tail as IPv4-mapped (::ffff:a.b.c.d); only that form keeps its dots, so
  // any other one (e.g. the deprecated IPv4-compatible ::192.0.2.1) is turned into two hex groups first.
  const addr = /(^|:)ffff:[\d.]+$/i.test(written) ? written : written.replace(
    /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/,
    (_m, a, b, c, d) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
  );
  if (!ipaddr.IPv6.isValid(addr)) return trimmed;
  try {
    const parsed = ipaddr.IPv6.parse(addr);
    const text = parsed.isIPv4MappedAddress() ? parsed.toIPv4Address().toString() : parsed.toRFC5952String();
    return withZone(text, zone);
  } catch {
    return trimmed;
  }
}

const IPV4_WITH_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;
/** A hex group and a colon: how an IPv6 address that does not start with a digit begins. */
const HEX_START = /^[0-9A-Fa-f]{1,4}:/;
const BRACKETED = /^\[([^\]]+)\](?::\d{1,5})?$/;

/**
 * Whether `text` (trimmed) is an IP address as someone might write it: dotted-quad IPv4 (with an optional
 * port), or IPv6 in any spelling (compressed, IPv4-mapped, with a zone id, in brackets with a port).
 *
 * @example
 * ```ts
 * import { looksLikeIp } from "./mask.ts";
 * looksLikeIp("10.0.0.1");         // true
 * looksLikeIp("[FE80::1%eth0]:80"); // true
 * looksLikeIp("2.3.0");            // false
 * ```
 */
export function looksLikeIp(text: string): boolean {
  let s = text.trim();
  if (s.length < 2 || s.length > 64) return false;
  // Cheap character tests first: ipaddr.js validates by parsing and catching, which costs tens of
  // microseconds per call, and most values (user ids, locales) fail at the first look.
  const c = s.charCodeAt(0);
  const digit = c >= 48 && c <= 57;
  if (!digit && c !== 91 /* [ */ && c !== 58 /* : */ && !HEX_START.test(s)) return false;
  const bracketed = BRACKETED.exec(s);
  if (bracketed) s = bracketed[1];
  const withPort = IPV4_WITH_PORT.exec(s);
  if (withPort) s = withPort[1];
  if (s.includes(":")) {
    const zone = s.indexOf("%");
    const addr = zone < 0 ? s : s.slice(0, zone);
    return IPV6_CHARS.test(addr) && ipaddr.IPv6.isValid(addr);
  }
  const quad = IPV4.exec(s);
  return quad !== null && quad.slice(1).every((part) => Number(part) <= 255);
}

const HEX_AND_COLONS = /^[0-9A-Fa-f:]+$/;

/** The eight groups of an IPv6 address written in hex groups and colons (no dotted tail), else undefined. */
function hexGroups(text: string): number[] | undefined {
  if (!HEX_AND_COLONS.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const left = groupsOf(halves[0]);
  if (left === undefined) return undefined;
  if (halves.length === 1) return left.length === 8 ? left : undefined;
  const right = groupsOf(halves[1]);
  // "::" stands for one zero group at least.
  if (right === undefined || left.length + right.length > 7) return undefined;
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function groupsOf(side: string): number[] | undefined {
  if (side === "") return [];
  const out: number[] = [];
  for (const g of side.split(":")) {
    if (g.length === 0 || g.length > 4) return undefined;
    out.push(parseInt(g, 16));
  }
  return out;
}

/**
 * RFC 5952 text of eight groups: lowercase, no leading zeros, the longest run of two or more zero groups
 * (the first of equal runs) as "::"; an IPv4-mapped address (::ffff:0:0/96) as its dotted IPv4 address.
 */
function rfc5952(g: readonly number[]): string {
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`;
  }
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; i++) {
    if (g[i] !== 0) continue;
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = g.map((n) => n.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLength).join(":")}`;
}

/** A canonical address with its zone id, lowercased, when it had one. */
function withZone(text: string, zone: string | undefined): string {
  return zone === undefined ? text : `${text}%${zone.toLowerCase()}`;
}

function splitZone(s: string): [string, string | undefined] {
  const i = s.indexOf("%");
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/**
 * Returns a masker for one HMAC key. The key is the UTF-8 bytes of `key`; whether it is strong enough is
 * the configuration's business (`masq run` refuses weak and public keys), not this function's.
 *
 * @param keyId names the key (stored beside vault entries, so a rotation can tell old tokens from new)
 *
 * @example
 * ```ts
 * import { createMasker } from "./mask.ts";
 * const mask = createMasker("example-key");
 * mask.ip("199.172.111.135");
 * // "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6"
 * ```
 */
export function createMasker(key: string, keyId = "k1"): Masker {
  if (key.length === 0) throw new RangeError("HMAC key must not be empty");
  const mac = hmacSha256Hex(new TextEncoder().encode(key));
  const token = (domain: string, text: string) => mac(`${domain}:${text}`);
  const ip = (value: string) => token("ip", canonicalIp(value));
  const deviceId = (value: string) => token("device_id", value.trim());
  return { keyId, ip, deviceId, token };
}
