/**
 * Hostile producer input, shared by the unit tests (tests/transform/*) and the end-to-end proof
 * (tests/integration/hostile_test.ts): IP addresses in every spelling, device ids where masq keeps text in
 * the clear, and bodies and message attributes that plant them in every place a row, a redacted body, a
 * reason, a dead letter or a log line could keep them. Hand-written (each trick named) and generated
 * (fast-check). Every planted value is distinctive (documentation address ranges, long enough), so finding
 * one in an output means it leaked, not that a token or a timestamp happened to contain it.
 */
import fc from "fast-check";

/** 203.0.113.n as one 32-bit integer. */
function v4(a: number, b: number, c: number, d: number): number {
  return ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
}

/** The ASCII digits of `text` written in another numbering system (Intl's: "arab", "deva", "thai", ...). */
export function inScript(text: string, numberingSystem: string): string {
  const digits = new Intl.NumberFormat(`en-u-nu-${numberingSystem}`, { useGrouping: false });
  return text.replace(/\d/g, (d) => digits.format(Number(d)));
}

/** Numbering systems whose digits are Unicode decimal digits (\p{Nd}). */
export const SCRIPTS = [
  "arab",
  "arabext",
  "beng",
  "deva",
  "fullwide",
  "gujr",
  "guru",
  "khmr",
  "knda",
  "laoo",
  "mlym",
  "mymr",
  "orya",
  "tamldec",
  "telu",
  "thai",
  "tibt",
  "mathbold",
  "mathmono",
  "adlm",
] as const;

/**
 * IP addresses as producers (careless or hostile) write them, each with the trick it uses: every one must be
 * found by findAddress() and refused in a clear column, and none may survive into anything masq writes.
 */
export const ADDRESS_SPELLINGS: ReadonlyArray<readonly [trick: string, value: string]> = [
  ["prefixed with a name", "ip=203.0.113.100"],
  ["after a word", "UA 203.0.113.109"],
  ["with a prefix length", "203.0.113.103/32"],
  ["with a port", "203.0.113.119:443"],
  ["two of them, as X-Forwarded-For", "XFF: 203.0.113.104, 198.51.100.7"],
  ["in a URL", "http://203.0.113.5/x"],
  ["IPv6 in a URL, bracketed, with a port", "http://[2001:db8::1]:8080/"],
  ["in a user-agent string", "Mozilla/5.0 (X11) 203.0.113.110"],
  ["after a zero-width space", "\u200b203.0.113.101"],
  ["with a zero-width space inside", "203\u200b.0.113.102"],
  ["with a word joiner inside", "203.0\u2060.113.111"],
  ["with a byte order mark inside", "203.0.\ufeff113.112"],
  ["with a soft hyphen inside", "203.0.113\u00ad.113"],
  ["with a trailing dot", "203.0.113.100."],
  ["as a decimal integer", String(v4(203, 0, 113, 105))],
  ["as a hex integer", `0x${v4(203, 0, 113, 106).toString(16).toUpperCase()}`],
  ["as an octal integer", `0${v4(203, 0, 113, 107).toString(8)}`],
  ["as a zero-padded integer", `000000${v4(203, 0, 113, 108)}`],
  ["as an integer after a word", `from ${v4(203, 0, 113, 114)}`],
  ["in dotted hex", "0xcb.0x0.0x71.0x6a"],
  ["in dotted octal", "0313.0.0161.0152"],
  ["in the short form a.b.c", "203.0.29036"],
  ["in the short form a.b", "203.7340032"],
  ["IPv6 with a prefix length", "2001:db8::6f/64"],
  ["in fullwidth digits", "\uff12\uff10\uff13.\uff10.\uff11\uff11\uff13.\uff11"],
  ["with one dot leaders for dots", "203\u20240\u2024113\u202414"],
  ["with fullwidth full stops for dots", "203\uff0e0\uff0e113\uff0e15"],
  ["with ideographic full stops for dots", "203\u30020\u3002113\u300216"],
  ["in Arabic-Indic digits", inScript("203.0.113.17", "arab")],
  ["in Arabic-Indic digits and decimal separators", inScript("203\u066b0\u066b113\u066b18", "arab")],
  ["in Devanagari digits", inScript("203.0.113.19", "deva")],
  ["in Thai digits", inScript("203.0.113.20", "thai")],
  ["in mathematical bold digits", inScript("203.0.113.21", "mathbold")],
  ["with combining marks on its digits", "2\u03000\u03013.0.113.22"],
  ["with a keycap and a variation selector on its digits", "2\ufe0f\u20e303.0.113.24"],
  ["with control characters inside", "203\u0001.0.113.25"],
  ["as an integer with a control character inside", `34058\u0007${String(v4(203, 0, 113, 26)).slice(5)}`],
  ["in circled and superscript digits", "\u2461\u24ea\u2462.\u2070.\u00b9\u00b9\u00b3.27"],
  [
    "hidden in tag characters",
    `user-${[..."203.0.113.28"].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join("")}`,
  ],
  ["IPv4-mapped IPv6", "::ffff:203.0.113.23"],
  ["IPv4-mapped IPv6 in hex", "::FFFF:CB00:7118"],
  ["IPv6 with a zone id", "fe80::1ff:fe23:4567%eth0"],
  ["IPv6 in upper case, bracketed, with a port", "[2001:DB8::2]:443"],
  ["IPv6 glued to letters", "UA2001:db8::3"],
  ["IPv6 with fullwidth colons", "2001\uff1adb8\uff1a\uff1a4"],
  ["IPv6 with ratio signs for colons", "2001\u2236db8\u2236\u22365"],
];

/** Device ids, in the shapes the sample data and other producers use. */
export const DEVICE_IDS = ["RTM-0181", "593-47-5928", "DEV-5512-QZ", "a1b2c3d4e5f6-devid"] as const;

/** Values findAddress() must NOT take for an address (user ids, versions, device names, locales, times). */
export const NOT_ADDRESSES: readonly string[] = [
  "41e06f8f-2382-47ce-8733-ec3f76d5eb56",
  "41206818-2382-47ce-8733-ec3f76d5eb56",
  "424cdd21-063a-43a7-b91b-000340580388",
  "user 16777216-2382-47ce-8733-ec3f76d5eb56",
  "u123456789",
  "u-1234567",
  "16777215",
  "user-42",
  "14.2",
  "2.3.0",
  "0.96",
  "iOS 14.2",
  "Android 14",
  "iPhone14,2",
  "SM-G991B",
  "Pixel 7 Pro",
  "x86_64",
  "pt-BR",
  "en_US",
  "RU",
  "RTM-0181",
  "593-47-5928",
  "12:30:45",
  "2024-05-17T12:30:45Z",
  "00:1a:2b:3c:4d:5e",
  "00:1a:2b:ff:fe:3c:4d:5e",
  "std::vector",
  "john.doe@example.com",
  "urn:uuid:41e06f8f-2382-47ce-8733-ec3f76d5eb56",
  "Chrome 120.0.6099.109",
  "1.2.3.4567",
  "4294967296",
  "0x10",
];

/** One hostile message: its body, the values that must appear nowhere, and what masq must make of it. */
export interface HostileBody {
  name: string;
  body: string;
  planted: string[];
  outcome?: "inserted" | "rejected";
}

const CLEAR_COLUMNS = ["user_id", "device_type", "locale"] as const;

function json(x: unknown): string {
  return JSON.stringify(x);
}

/** `levels` nested arrays with `leaf` at the bottom. */
function deepArray(levels: number, leaf: unknown): string {
  return `${"[".repeat(levels)}${json(leaf)}${"]".repeat(levels)}`;
}

/** The hand-written corpus: every spelling in every clear column, and every trick against redaction. */
export function handWrittenBodies(): HostileBody[] {
  const out: HostileBody[] = [];
  ADDRESS_SPELLINGS.forEach(([trick, value], i) => {
    const ip = `198.51.100.${10 + (i % 200)}`;
    const deviceId = `DEV-${4000 + i}-QX`;
    for (const column of CLEAR_COLUMNS) {
      out.push({
        name: `${column} holds an address ${trick}`,
        body: json({ user_id: `hostile-${i}`, [column]: value, ip, device_id: deviceId }),
        planted: [value, ip, deviceId],
        outcome: "rejected",
      });
    }
    // Through nesting: {"user": {"id": ..}} is user_id, {"device": {"type": ..}} is device_type.
    out.push({
      name: `user.id holds an address ${trick}`,
      body: json({ user: { id: value }, device: { type: "ios", id: deviceId } }),
      planted: [value, deviceId],
      outcome: "rejected",
    });
    // In every allow-listed field of a body rejected for another reason (the redacted copy keeps those).
    out.push({
      name: `allow-listed fields of a rejected body hold an address ${trick}`,
      body: json({ device_type: value, locale: value, app_version: value, timestamp: value, ip }),
      planted: [value, ip],
      outcome: "rejected",
    });
    // As a key, and as a value under an unknown key, at depth and in arrays.
    out.push({
      name: `an address ${trick} as an object key and under unknown keys`,
      body: json({ user_id: 40 + i, [value]: true, meta: { [value]: [value], note: `seen at ${value}` } }),
      planted: [value],
      outcome: "rejected",
    });
  });
  const integer = v4(203, 0, 113, 120);
  out.push(
    {
      name: "a device id as a top-level key",
      body: '{"user_id":12345,"RTM-0181":true}',
      planted: ["RTM-0181"],
      outcome: "rejected",
    },
    {
      name: "device ids as keys nested under devices",
      body: json({
        user_id: 12346,
        devices: { "593-47-5928": true, "DEV-5512-QZ": { seen: ["a1b2c3d4e5f6-devid"] } },
      }),
      planted: ["593-47-5928", "DEV-5512-QZ", "a1b2c3d4e5f6-devid"],
      outcome: "rejected",
    },
    {
      name: "a device-id-shaped locale in a rejected body",
      body: json({ user_id: 7, locale: "RTM-0181", device_type: "593-47-5928" }),
      planted: ["RTM-0181", "593-47-5928"],
      outcome: "rejected",
    },
    {
      name: "an integer address as the timestamp of a rejected body (number and string)",
      body: json({ user_id: 8, timestamp: integer }),
      planted: [String(integer)],
      outcome: "rejected",
    },
    {
      name: "an integer address as a numeric-string timestamp of a rejected body",
      body: json({ timestamp: String(integer + 1) }),
      planted: [String(integer + 1)],
      outcome: "rejected",
    },
    {
      name: "an address as app_version, string and number",
      body: json({ user_id: "u-appv", app_version: "203.0.113.121", extra: { app_version: integer + 2 } }),
      planted: ["203.0.113.121", String(integer + 2)],
      outcome: "rejected",
    },
    {
      name: "2,000 nested arrays under an unknown key, an address at the bottom",
      body: `{"user_id":"deep-user","x":${deepArray(2000, "203.0.113.122")}}`,
      planted: ["203.0.113.122"],
      outcome: "rejected",
    },
    {
      name: "40 nested arrays under a known key",
      body: `{"user_id":"deep-user-2","ip":${deepArray(40, "203.0.113.123")}}`,
      planted: ["203.0.113.123"],
      outcome: "rejected",
    },
    {
      name: "33 nested objects, an address and a device id as keys at every level",
      body: `{"user_id":"deep-user-3","a":${'{"203.0.113.124":{"RTM-0184":'.repeat(17)}1${"}}".repeat(17)}}`,
      planted: ["203.0.113.124", "RTM-0184"],
      outcome: "rejected",
    },
    {
      name: "__proto__ holding an address",
      body: '{"__proto__":{"ip":"203.0.113.125","RTM-0185":1},"user_id":5}',
      planted: ["203.0.113.125", "RTM-0185"],
      outcome: "rejected",
    },
    {
      name: "the contract's names in other cases",
      body: json({
        User_ID: "203.0.113.126",
        IP: "203.0.113.127",
        Device_ID: "DEV-5513-QZ",
        DEVICE_TYPE: "RTM-0186",
      }),
      planted: ["203.0.113.126", "203.0.113.127", "DEV-5513-QZ", "RTM-0186"],
      outcome: "rejected",
    },
    {
      name: "geo.ip and device.type holding addresses",
      body: json({ geo: { ip: "203.0.113.128" }, device: { id: "DEV-5514-QZ", type: "203.0.113.129" } }),
      planted: ["203.0.113.128", "DEV-5514-QZ", "203.0.113.129"],
      outcome: "rejected",
    },
    {
      name: "a stored column of the wrong type holding an address",
      body: json({
        user_id: "u-wrong-type",
        device_type: ["203.0.113.130"],
        locale: { ip: "203.0.113.131" },
      }),
      planted: ["203.0.113.130", "203.0.113.131"],
      outcome: "rejected",
    },
    {
      name: "an address spelled with JSON escapes",
      body: '{"user_id":"\\u0032\\u0030\\u0033.0.113.132"}',
      planted: ["203.0.113.132"],
      outcome: "rejected",
    },
    {
      name: "not JSON, with an address and a device id",
      body: "ip=203.0.113.133 device=DEV-5515-QZ",
      planted: ["203.0.113.133", "DEV-5515-QZ"],
      outcome: "rejected",
    },
    {
      name: "broken JSON right after an address",
      body: '{"ip":"203.0.113.134", broken',
      planted: ["203.0.113.134"],
      outcome: "rejected",
    },
    {
      name: "JSON that is an array of addresses",
      body: '["203.0.113.135","RTM-0187"]',
      planted: ["203.0.113.135", "RTM-0187"],
      outcome: "rejected",
    },
    {
      name: "a lone surrogate next to an address",
      body: '{"user_id":"u\\ud800","ip":"203.0.113.136"}',
      planted: ["203.0.113.136"],
      outcome: "rejected",
    },
    // Valid logins: addresses and device ids only where masq masks them.
    {
      name: "a duplicate key: the first device_type (an address) is overwritten",
      body: '{"user_id":"dup-user","device_type":"203.0.113.137","device_type":"ios"}',
      planted: ["203.0.113.137"],
      outcome: "inserted",
    },
    {
      name: "a UUID user id whose first part is all digits, an address with a port as ip",
      body: json({
        user_id: "41206818-2382-47ce-8733-ec3f76d5eb56",
        ip: "203.0.113.138:8080",
        device_id: "DEV-5516-QZ",
      }),
      planted: ["203.0.113.138", "DEV-5516-QZ"],
      outcome: "inserted",
    },
    {
      name: "an integer address as ip, a device id nested as device.id",
      body: json({ user_id: "u123456789", ip: String(integer + 3), device: { id: "RTM-0188" } }),
      planted: [String(integer + 3), "RTM-0188"],
      outcome: "inserted",
    },
    {
      name: "an integer address as the timestamp of a valid login",
      body: json({ user_id: "valid-ts", timestamp: integer + 4 }),
      planted: [String(integer + 4)],
      outcome: "inserted",
    },
    {
      name: "IPv6 with a port as ip, a locale, a device name and a version",
      body: json({
        user_id: "v6-user",
        ip: "[2001:db8::7:139]:443",
        locale: "en_US",
        device_type: "iPhone14,2",
        app_version: "14.2",
      }),
      planted: ["2001:db8::7:139"],
      outcome: "inserted",
    },
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Generated: addresses spelled at random, planted at random places.

const octet = fc.integer({ min: 10, max: 254 });
const firstOctet = fc.integer({ min: 11, max: 223 }).filter((a) => a !== 127);
const DOT_LIKE = [".", ".", "\u2024", "\uff0e", "\u3002", "\u00b7", "\u066b"];
const INVISIBLE = ["\u200b", "\u2060", "\ufeff", "\u00ad", "\u200d"];

/** A spelled IPv4 address and its plain dotted form. */
export interface Spelled {
  spelled: string;
  plain: string;
}

const randomCase = (s: string, upper: boolean) => (upper ? s.toUpperCase() : s);

/** An IPv4 address in one of inet_aton's spellings, sometimes in another script or with invisible characters. */
export const spelledIpv4: fc.Arbitrary<Spelled> = fc.record({
  o: fc.tuple(firstOctet, octet, octet, octet),
  form: fc.constantFrom(
    "dotted",
    "integer",
    "hex",
    "octal",
    "dottedHex",
    "dottedOctal",
    "abc",
    "ab",
    "mixed",
  ),
  upper: fc.boolean(),
  script: fc.option(fc.constantFrom(...SCRIPTS), { freq: 3 }),
  dot: fc.constantFrom(...DOT_LIKE),
  invisible: fc.option(fc.tuple(fc.constantFrom(...INVISIBLE), fc.nat()), { freq: 3 }),
  mixed: fc.array(fc.constantFrom("dec", "hex", "oct"), { minLength: 4, maxLength: 4 }),
}).map(({ o: [a, b, c, d], form, upper, script, dot, invisible, mixed }) => {
  const n = v4(a, b, c, d);
  const part = (x: number, how: string) =>
    how === "hex"
      ? randomCase(`0x${x.toString(16)}`, upper)
      : how === "oct"
      ? `0${x.toString(8)}`
      : String(x);
  let text: string;
  switch (form) {
    case "integer":
      text = String(n);
      break;
    case "hex":
      text = randomCase(`0x${n.toString(16)}`, upper);
      break;
    case "octal":
      text = `0${n.toString(8)}`;
      break;
    case "dottedHex":
      text = [a, b, c, d].map((x) => part(x, "hex")).join(".");
      break;
    case "dottedOctal":
      text = [a, b, c, d].map((x) => part(x, "oct")).join(".");
      break;
    case "abc":
      text = `${a}.${b}.${(c << 8) + d}`;
      break;
    case "ab":
      text = `${a}.${(b << 16) + (c << 8) + d}`;
      break;
    case "mixed":
      text = [a, b, c, d].map((x, i) => part(x, mixed[i])).join(".");
      break;
    default:
      text = `${a}.${b}.${c}.${d}`;
  }
  // Another script's digits and dots only where every digit is decimal (not in hex spellings).
  if (!/x/i.test(text)) {
    if (script !== null) text = inScript(text, script);
    text = text.replaceAll(".", dot);
  }
  if (invisible !== null) {
    const chars = [...text];
    chars.splice(1 + (invisible[1] % (chars.length - 1)), 0, invisible[0]);
    text = chars.join("");
  }
  return { spelled: text, plain: `${a}.${b}.${c}.${d}` };
});

const group = fc.integer({ min: 0x1000, max: 0xffff }).map((g) => g.toString(16));

/** An IPv6 address in some spelling. */
export const spelledIpv6: fc.Arbitrary<Spelled> = fc.record({
  g: fc.array(group, { minLength: 8, maxLength: 8 }),
  style: fc.constantFrom("full", "upper", "compressed", "zone", "mapped", "fullwidth"),
  v4: fc.tuple(firstOctet, octet, octet, octet),
}).map(({ g, style, v4: o }) => {
  const full = g.join(":");
  switch (style) {
    case "upper":
      return { spelled: full.toUpperCase(), plain: full };
    case "compressed":
      return { spelled: `${g.slice(0, 3).join(":")}::${g.slice(6).join(":")}`, plain: full };
    case "zone":
      return { spelled: `fe80::${g.slice(5).join(":")}%eth${g[0].slice(0, 1)}`, plain: full };
    case "mapped":
      return { spelled: `::ffff:${o.join(".")}`, plain: o.join(".") };
    case "fullwidth":
      return { spelled: full.replaceAll(":", "\uff1a"), plain: full };
    default:
      return { spelled: full, plain: full };
  }
});

/** An address in some spelling, decorated the way producers write them (a name, a port, a URL, ...). */
export const plantedAddress: fc.Arbitrary<Spelled> = fc.tuple(
  fc.oneof({ weight: 3, arbitrary: spelledIpv4 }, { weight: 1, arbitrary: spelledIpv6 }),
  fc.constantFrom("", "ip=", "UA ", "from ", "http://", "XFF: 198.51.100.9, "),
  fc.constantFrom("", ".", "/24", ":8443", "/path?q=1", ")"),
).map(([{ spelled, plain }, before, after]) => {
  const v6 = spelled.includes(":") || spelled.includes("\uff1a");
  const port = after === ":8443" && v6 ? `[${spelled}]:8443` : `${spelled}${after}`;
  return { spelled: `${before}${port}`, plain };
});

const deviceId = fc.oneof(
  fc.tuple(
    fc.integer({ min: 100, max: 999 }),
    fc.integer({ min: 10, max: 99 }),
    fc.integer({ min: 1000, max: 9999 }),
  )
    .map(([a, b, c]) => `${a}-${b}-${c}`),
  fc.tuple(fc.stringMatching(/^[A-Z]{3}$/), fc.integer({ min: 1000, max: 9999 })).map(([p, n]) =>
    `${p}-${n}`
  ),
);

const safeId = fc.stringMatching(/^[a-z]{3,8}-[a-z]{3,8}$/);

/**
 * A generated hostile body: an address (some spelling, some decoration) and a device id planted at random
 * places: a clear column (rejected), an allow-listed field of a rejected body, an object key, a value under
 * an unknown key at some depth, deep nested arrays, a masked field of a valid login.
 */
export const generatedBody: fc.Arbitrary<HostileBody> = fc.record({
  address: plantedAddress,
  device: deviceId,
  place: fc.constantFrom(
    "user_id",
    "device_type",
    "locale",
    "user.id",
    "device.type",
    "allowListed",
    "key",
    "deepKey",
    "unknown",
    "deepArray",
    "masked",
    "timestampNumber",
  ),
  user: safeId,
  depth: fc.integer({ min: 2, max: 400 }),
  valid: fc.boolean(),
}).map(({ address, device, place, user, depth, valid }) => {
  const a = address.spelled;
  const base: Record<string, unknown> = valid ? { user_id: user } : { user_id: 1 };
  let body: string;
  switch (place) {
    case "user_id":
    case "device_type":
    case "locale":
      body = json({ ...base, user_id: place === "user_id" ? a : user, [place]: a, device_id: device });
      break;
    case "user.id":
      body = json({ user: { id: a }, device: { id: device } });
      break;
    case "device.type":
      body = json({ ...base, device: { type: a, id: device } });
      break;
    case "allowListed":
      body = json({
        locale: device,
        device_type: a,
        app_version: a,
        timestamp: a,
        user_id: valid ? 2 : null,
      });
      break;
    case "key":
      body = json({ ...base, [a]: device, [device]: { ip: a } });
      break;
    case "deepKey": {
      let inner: unknown = { [device]: a };
      for (let i = 0; i < depth % 40; i++) inner = { [`k${i}`]: [inner] };
      body = json({ ...base, [a]: inner });
      break;
    }
    case "unknown":
      body = json({
        ...base,
        note: `login from ${a}`,
        tags: [a, [device]],
        nested: { ip: a, devices: [device] },
      });
      break;
    case "deepArray":
      body = `{"user_id":${json(valid ? user : 3)},"x":${deepArray(depth, a)},"device_id":${json(device)}}`;
      break;
    case "timestampNumber": {
      const integer = address.plain.includes(".") && !address.plain.includes(":")
        ? address.plain.split(".").reduce((n, p) => n * 256 + Number(p), 0)
        : 3405803881;
      body = json({ user_id: valid ? 4 : user, timestamp: integer, app_version: integer, device_id: device });
      return {
        name: `generated: ${place}`,
        body,
        planted: [String(integer), device].filter((p) => p.length > 7),
      };
    }
    default: // masked: a valid login with the address as ip and the device id as device_id
      body = json({ user_id: user, ip: a, device_id: device });
  }
  return { name: `generated: ${place}`, body, planted: [a, address.plain, device] };
});

// ---------------------------------------------------------------------------------------------------------
// Message attributes a producer sets: masq must neither trust nor keep any of them.

/** One message with producer-set attributes. */
export interface AttributeProbe {
  name: string;
  body: string;
  attributes: Record<string, string>;
  planted: string[];
  outcome: "inserted" | "rejected";
}

/** Probes of producer-set `masq_*` attributes (the names masq gives its own dead letters and replays). */
export function attributeProbes(): AttributeProbe[] {
  const collide = ["collide-user-a", "collide-user-b", "collide-user-c"].map((user): AttributeProbe => ({
    name: `masq_redrive_id "collide-1" on the login of ${user}`,
    body: json({ user_id: user, ip: "203.0.113.201" }),
    attributes: { masq_redrive_id: "collide-1" },
    planted: ["collide-1", "203.0.113.201"],
    outcome: "inserted",
  }));
  return [
    ...collide,
    {
      name: "masq_redrive_id holding a device id",
      body: json({ user_id: "redrive-device-user" }),
      attributes: { masq_redrive_id: "593-47-5928" },
      planted: ["593-47-5928"],
      outcome: "inserted",
    },
    {
      name: "masq_redrive_id holding a device id on a rejected body",
      body: json({ user_id: 99, ip: "203.0.113.202" }),
      attributes: { masq_redrive_id: "RTM-0191" },
      planted: ["RTM-0191", "203.0.113.202"],
      outcome: "rejected",
    },
    {
      name: "every other masq_* attribute masq writes, set by the producer on a rejected body",
      body: json({ user_id: [], device_id: "DEV-5601-QZ" }),
      attributes: {
        masq_reason: "refused 203.0.113.203",
        masq_message_id: "msg-203.0.113.204",
        masq_source_queue: "http://203.0.113.205/000000000000/q",
        masq_sent_timestamp: String(v4(203, 0, 113, 206)),
        masq_original: "RTM-0192-not-ciphertext",
        masq_key_id: "DEV-5602-QZ",
      },
      planted: [
        "203.0.113.203",
        "203.0.113.204",
        "203.0.113.205",
        String(v4(203, 0, 113, 206)),
        "RTM-0192",
        "DEV-5602-QZ",
        "DEV-5601-QZ",
      ],
      outcome: "rejected",
    },
    {
      name: "masq_* attributes on a valid login",
      body: json({ user_id: "attr-login-user", device_id: "DEV-5603-QZ" }),
      attributes: {
        masq_reason: "RTM-0193",
        masq_message_id: "203.0.113.207",
        masq_replayed: "yes-203.0.113.208",
      },
      planted: ["RTM-0193", "203.0.113.207", "203.0.113.208", "DEV-5603-QZ"],
      outcome: "inserted",
    },
  ];
}
