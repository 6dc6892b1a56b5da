/**
 * Pseudonymisation of the two personal fields. A token is `hex(HMAC-SHA-256(K, field + ":" + canonical))`:
 * deterministic (the same IP under the same key is always the same token, so analysts can still count
 * duplicates), keyed (without K nobody can brute-force the 2^32 IPv4 addresses back, unlike a bare SHA-256),
 * and domain-separated (an IP and a device id with the same text never share a token).
 */
import ipaddr from "ipaddr.js";

const encoder = new TextEncoder();

/**
 * The canonical text of an IP address: trimmed; an IPv6 address in its RFC 5952 form (lowercase,
 * longest zero run compressed), so "2001:0DB8::0001" and "2001:db8::1" mask alike. Anything that is not an
 * IPv6 address is returned trimmed and otherwise untouched.
 *
 * @example
 * ```ts
 * canonicalIp(" 2001:0DB8:0:0:0:0:0:0001 "); // "2001:db8::1"
 * canonicalIp("199.172.111.135");          // "199.172.111.135"
 * ```
 */
export function canonicalIp(ip: string): string {
  const trimmed = ip.trim();
  if (!trimmed.includes(":")) return trimmed;
  const [written, zone] = splitZone(trimmed);
  // ipaddr.js reads every dotted tail as IPv4-mapped (::ffff:a.b.c.d); only that form keeps its dots, so
  // any other one (e.g. the deprecated IPv4-compatible ::192.0.2.1) is turned into two hex groups first.
  const addr = /(^|:)ffff:[\d.]+$/i.test(written) ? written : written.replace(
    /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/,
    (_m, a, b, c, d) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
  );
  if (!ipaddr.IPv6.isValid(addr)) return trimmed;
  try {
    const parsed = ipaddr.IPv6.parse(addr);
    // RFC 5952 §5: IPv4-mapped addresses keep their dotted tail.
    const text = parsed.isIPv4MappedAddress()
      ? `::ffff:${parsed.toIPv4Address().toString()}`
      : parsed.toRFC5952String();
    return zone === undefined ? text : `${text}%${zone}`;
  } catch {
    return trimmed;
  }
}

function splitZone(s: string): [string, string | undefined] {
  const i = s.indexOf("%");
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/** Masks personal values with one imported HMAC key. */
export interface Masker {
  /** Token of an IP address (canonicalised first). */
  ip(value: string): Promise<string>;
  /** Token of a device id (trimmed first). */
  deviceId(value: string): Promise<string>;
}

function toHex(buf: ArrayBuffer): string {
  const bytes = new Uint8Array(buf);
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += bytes[i].toString(16).padStart(2, "0");
  return out;
}

/**
 * Imports the key once (Web Crypto, non-extractable) and returns a masker.
 *
 * @example
 * ```ts
 * const mask = await createMasker("example-key");
 * await mask.ip("199.172.111.135");
 * // "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6"
 * ```
 */
export async function createMasker(key: string): Promise<Masker> {
  if (key.length === 0) throw new RangeError("HMAC key must not be empty");
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const token = async (text: string) =>
    toHex(await crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(text)));
  return {
    ip: (value) => token(`ip:${canonicalIp(value)}`),
    deviceId: (value) => token(`device_id:${value.trim()}`),
  };
}
