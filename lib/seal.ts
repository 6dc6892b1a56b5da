/**
 * The sealed vault's cryptography: the privacy officer's key pair and HPKE (RFC 9180: DHKEM(X25519,
 * HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode, via `@hpke/core`, which runs on Web Crypto), epochs (one
 * HPKE encapsulation whose exporter gives a wrapping key), AES-256-GCM under data keys, and masq's MACs. The
 * ingest path holds no key that opens anything outside its own current epoch.
 *
 * Two levels of keys:
 * - the privacy officer's key pair (`vault-keygen`): masq run holds the public half, recover, redrive, rekey
 *   and vault-convert the private half. Each key has an id (a fingerprint of its public half), so keys rotate.
 * - per subject (a user_id) and epoch, a random data key, stored in the key store only wrapped under the
 *   epoch's key (lib/subject_keys.ts). Originals of a person are encrypted under it; deleting a person's keys
 *   (`forget --user-id`) erases every copy at once. What has no usable user_id (some dead letters) is sealed
 *   to the officer's key directly.
 *
 * Integrity: HPKE base mode lets anyone holding the public key seal (or open an epoch), so every key store
 * row, every entry or letter sealed to the officer, and every dead letter carries an HMAC-SHA256 under a key
 * derived (HKDF, its own purpose) from masq's HMAC key, binding it to its place. An entry under a data key is
 * authenticated by AES-GCM under that key. The privacy officer's commands verify and refuse what masq did not
 * seal.
 *
 * @module
 */
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { ConfigError, VaultError } from "./errors.ts";
import { fromBase64, toBase64 } from "./vault.ts";

const encoder = new TextEncoder();

// One suite for everything: X25519 is in Deno's Web Crypto; AES-128-GCM is the suite's Web Crypto AEAD.
const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes128Gcm(),
});

/** Names the construction (in key files and dead letters), so a later one can be told apart. */
export const SEAL_SUITE = "hpke-x25519-sha256-aes128gcm";
/** HPKE's `info`: every seal of masq's is bound to this application and version. */
const INFO = encoder.encode("masq sealed vault v1");
/** X25519 public key and HPKE `enc` length. */
const KEM_BYTES = 32;
const MAC_BYTES = 32;

const PUBLIC_TAG = "masq-vault-public-key";
const PRIVATE_TAG = "masq-vault-private-key";

/** The officer's public key, as ingest holds it. */
export interface OfficerPublicKey {
  keyId: string;
  key: CryptoKey;
  raw: Uint8Array;
}

/** The officer's private keys by id (a key file may hold several lines: the current key and older ones). */
export interface OfficerKeyring {
  /** The newest key (the file's first line): what new subject keys are sealed to. */
  current: OfficerPublicKey;
  privateKeys: Map<string, CryptoKey>;
}

function buf(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

/** A key's id: the first 16 hex digits of SHA-256 of its public half, after "x". */
export function officerKeyId(publicKey: Uint8Array): string {
  return "x" + Array.from(sha256(publicKey).subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Makes the officer's key pair: the public key file's text and the private key file's text (the private
 * line holds both halves, so the officer's commands can seal subject keys too).
 *
 * @example
 * ```ts
 * import { generateOfficerKeys, parseOfficerPrivateKeys, parseOfficerPublicKey } from "./seal.ts";
 * const pair = await generateOfficerKeys();
 * const pub = await parseOfficerPublicKey(pair.publicText, "PII_VAULT_PUBLIC_KEY");
 * const ring = await parseOfficerPrivateKeys(pair.privateText, "PII_VAULT_PRIVATE_KEY");
 * pub.keyId === ring.current.keyId; // true
 * ```
 */
export async function generateOfficerKeys(): Promise<
  { keyId: string; publicText: string; privateText: string }
> {
  const pair = await suite.kem.generateKeyPair();
  const pub = new Uint8Array(await suite.kem.serializePublicKey(pair.publicKey));
  const priv = new Uint8Array(await suite.kem.serializePrivateKey(pair.privateKey));
  const keyId = officerKeyId(pub);
  return {
    keyId,
    publicText: `${PUBLIC_TAG} ${SEAL_SUITE} ${keyId} ${toBase64(pub)}\n`,
    privateText: `${PRIVATE_TAG} ${SEAL_SUITE} ${keyId} ${toBase64(priv)} ${toBase64(pub)}\n`,
  };
}

function decodeKey(text: string, name: string, what: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(text);
  } catch {
    throw new ConfigError(name, `the ${what} is not base64; make the key pair with \`masq vault-keygen\``);
  }
  if (bytes.length !== KEM_BYTES) {
    throw new ConfigError(
      name,
      `the ${what} is not ${KEM_BYTES} bytes; make the key pair with \`masq vault-keygen\``,
    );
  }
  return bytes;
}

/** Parses a public key file (or variable) as vault-keygen writes it; errors name `name`, never the key. */
export async function parseOfficerPublicKey(text: string, name: string): Promise<OfficerPublicKey> {
  const parts = text.trim().split(/\s+/);
  if (parts[0] === PRIVATE_TAG) {
    throw new ConfigError(name, "holds a private key; masq run takes the public key only (vault-public.key)");
  }
  if (parts.length !== 4 || parts[0] !== PUBLIC_TAG || parts[1] !== SEAL_SUITE) {
    throw new ConfigError(
      name,
      `is not a masq vault public key ("${PUBLIC_TAG} ${SEAL_SUITE} <id> <base64>"); make one with \`masq vault-keygen\``,
    );
  }
  const raw = decodeKey(parts[3], name, "public key");
  if (officerKeyId(raw) !== parts[2]) throw new ConfigError(name, "the key id does not match the key");
  return { keyId: parts[2], raw, key: await suite.kem.deserializePublicKey(buf(raw)) };
}

/** Parses a private key file: one key a line, the first the current one. */
export async function parseOfficerPrivateKeys(text: string, name: string): Promise<OfficerKeyring> {
  const privateKeys = new Map<string, CryptoKey>();
  let current: OfficerPublicKey | undefined;
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.trim().startsWith("#")) continue;
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 5 || parts[0] !== PRIVATE_TAG || parts[1] !== SEAL_SUITE) {
      throw new ConfigError(
        name,
        `is not a masq vault private key file (lines "${PRIVATE_TAG} ${SEAL_SUITE} <id> <base64> <base64>")`,
      );
    }
    const priv = decodeKey(parts[3], name, "private key");
    const pub = decodeKey(parts[4], name, "public key");
    if (officerKeyId(pub) !== parts[2]) throw new ConfigError(name, "a key id does not match its key");
    let privateKey: CryptoKey;
    try {
      privateKey = await suite.kem.deserializePrivateKey(buf(priv));
    } catch {
      throw new ConfigError(name, "a private key does not load");
    }
    privateKeys.set(parts[2], privateKey);
    current ??= { keyId: parts[2], raw: pub, key: await suite.kem.deserializePublicKey(buf(pub)) };
  }
  if (current === undefined) throw new ConfigError(name, "holds no key");
  return { current, privateKeys };
}

/** HPKE-seals `plaintext` to `publicKey`, bound to `aad`: `enc` (32 bytes) then the ciphertext. */
export async function sealTo(publicKey: CryptoKey, plaintext: Uint8Array, aad: string): Promise<Uint8Array> {
  const { enc, ct } = await suite.seal(
    { recipientPublicKey: publicKey, info: INFO },
    buf(plaintext),
    buf(encoder.encode(aad)),
  );
  const out = new Uint8Array(enc.byteLength + ct.byteLength);
  out.set(new Uint8Array(enc));
  out.set(new Uint8Array(ct), enc.byteLength);
  return out;
}

/** Opens what sealTo() made; a VaultError when the key, the data or the context differ. */
export async function openWith(privateKey: CryptoKey, sealed: Uint8Array, aad: string): Promise<Uint8Array> {
  if (sealed.length < KEM_BYTES + 16) throw new VaultError("sealed data is too short to be masq's");
  try {
    return new Uint8Array(
      await suite.open(
        { recipientKey: privateKey, enc: buf(sealed.subarray(0, KEM_BYTES)), info: INFO },
        buf(sealed.subarray(KEM_BYTES)),
        buf(encoder.encode(aad)),
      ),
    );
  } catch {
    throw new VaultError(
      "does not open under the privacy officer's key: wrong key, altered data or another context",
    );
  }
}

/** Loads a public key. */
export async function loadPublicKey(raw: Uint8Array): Promise<CryptoKey> {
  if (raw.length !== KEM_BYTES) throw new VaultError("a public key is not 32 bytes");
  return await suite.kem.deserializePublicKey(buf(raw));
}

// --- epochs: one HPKE encapsulation to the officer per run process and period (lib/data_keys.ts) ---

const EPOCH_INFO = encoder.encode("masq key store epoch v1");
const WRAP_LABEL = encoder.encode("masq subject keys v1");

/**
 * Opens an epoch: one HPKE encapsulation to the officer's key (its `enc` goes with every subject key made
 * in it) and the key it wraps subject keys with, from the exporter (RFC 9180 §5.3). The sender context is
 * dropped here: the process keeps only the wrapping key, which opens nothing made outside this epoch.
 */
export async function openEpochKey(
  officer: OfficerPublicKey,
): Promise<{ enc: Uint8Array; wrapKey: Uint8Array }> {
  const ctx = await suite.createSenderContext({ recipientPublicKey: officer.key, info: EPOCH_INFO });
  return { enc: new Uint8Array(ctx.enc), wrapKey: new Uint8Array(await ctx.export(buf(WRAP_LABEL), 32)) };
}

/** The officer's side: an epoch's wrapping key from its `enc` (VaultError when the key does not open it). */
export async function epochKeyFromEnc(privateKey: CryptoKey, enc: Uint8Array): Promise<Uint8Array> {
  if (enc.length !== KEM_BYTES) throw new VaultError("an epoch's enc is not 32 bytes");
  try {
    const ctx = await suite.createRecipientContext({
      recipientKey: privateKey,
      enc: buf(enc),
      info: EPOCH_INFO,
    });
    return new Uint8Array(await ctx.export(buf(WRAP_LABEL), 32));
  } catch {
    throw new VaultError("an epoch of the key store does not open under the privacy officer's key");
  }
}

// --- AES-256-GCM under a subject's data key (or an epoch's wrapping key) ---

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** The shortest sealed data of either kind (an AES-GCM nonce and tag). */
const MIN_SEALED = NONCE_BYTES + TAG_BYTES;

function checkKey(key: Uint8Array): void {
  if (key.length !== 32) throw new VaultError("a data key is not 32 bytes");
}

// node:crypto's AES-GCM (Deno's native implementation) is synchronous: about 7 µs a seal here, where an
// awaited Web Crypto call costs about 29 (bench/BENCHMARKS.md, "The sealed vault's cost").
/** AES-256-GCM under `key`, bound to `aad`: a random 12-byte nonce, then the ciphertext and the tag. */
export function encryptWith(key: Uint8Array, plaintext: Uint8Array, aad: string): Uint8Array {
  checkKey(key);
  const iv = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(encoder.encode(aad));
  const body = c.update(plaintext);
  const last = c.final();
  const out = new Uint8Array(NONCE_BYTES + body.length + last.length + TAG_BYTES);
  out.set(iv);
  out.set(body, NONCE_BYTES);
  out.set(last, NONCE_BYTES + body.length);
  out.set(c.getAuthTag(), NONCE_BYTES + body.length + last.length);
  return out;
}

/** Opens what encryptWith() made; a VaultError when the key, the data or the context differ. */
export function decryptWith(key: Uint8Array, sealed: Uint8Array, aad: string): Uint8Array {
  checkKey(key);
  if (sealed.length < MIN_SEALED) throw new VaultError("sealed data is too short to be masq's");
  try {
    const d = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, NONCE_BYTES));
    d.setAAD(encoder.encode(aad));
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const body = d.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
    const last = d.final();
    const out = new Uint8Array(body.length + last.length);
    out.set(body);
    out.set(last, body.length);
    return out;
  } catch {
    throw new VaultError("does not open under its subject key: wrong key, altered data or another context");
  }
}

/**
 * What an original is sealed with: a subject's data key (`s:` recipients, AES-256-GCM) or the officer's
 * public key (`o:`, HPKE), with the recipient entries name.
 */
export type SealKey =
  | { recipient: string; dataKey: Uint8Array }
  | { recipient: string; publicKey: CryptoKey };

/** Seals `plaintext` with `to`, bound to `aad`. */
export async function sealFor(to: SealKey, plaintext: Uint8Array, aad: string): Promise<Uint8Array> {
  return "dataKey" in to
    ? encryptWith(to.dataKey, plaintext, aad)
    : await sealTo(to.publicKey, plaintext, aad);
}

// --- integrity ---

/**
 * The key of masq's seals' MACs: HKDF-SHA256 of the HMAC key with its own purpose (so no token masq makes is
 * one of these MACs, and the other way round).
 */
export function sealMacKey(hmacKey: string): Uint8Array {
  return hkdf(
    sha256,
    encoder.encode(hmacKey),
    encoder.encode("masq"),
    encoder.encode("masq seal mac v1"),
    32,
  );
}

// The HMAC's keyed state, made once per key and cloned per MAC (a third of a MAC's cost is keying).
const keyed = new WeakMap<Uint8Array, ReturnType<typeof hmac.create>>();

/** HMAC-SHA256 of length-prefixed parts (no two part lists give the same input). */
export function sealMac(key: Uint8Array, parts: readonly (string | Uint8Array)[]): Uint8Array {
  let base = keyed.get(key);
  if (base === undefined) {
    base = hmac.create(sha256, key);
    keyed.set(key, base);
  }
  const bytes = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const input = new Uint8Array(bytes.reduce((n, b) => n + 4 + b.length, 0));
  const view = new DataView(input.buffer);
  let at = 0;
  for (const b of bytes) {
    view.setUint32(at, b.length);
    input.set(b, at + 4);
    at += 4 + b.length;
  }
  return base.clone().update(input).digest();
}

/** Compares two MACs in a time that depends on their length only. */
export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// --- the envelope of a sealed pii_vault entry (in its ciphertext column) ---

const MAGIC = encoder.encode("MQS1");

/**
 * Who an entry is sealed to: `s:<subject key id>` (a person's key) or `o:<officer key id>` (no subject).
 * pii_vault.subject_key_id holds it too ("" for an entry under the old symmetric key).
 */
export type Recipient = string;

/**
 * A sealed entry as stored: the recipient, the MAC (entries sealed to the officer's key only), the seal.
 * An entry under a subject's data key (`s:`) needs no MAC of its own: AES-GCM under a key that only masq
 * ever held authenticates it, bound to its place by its additional data, and the key store row of that
 * data key carries masq's MAC (lib/subject_keys.ts). HPKE base mode (`o:`) lets anyone with the public key
 * seal, hence the MAC there.
 */
export interface SealedEntry {
  recipient: Recipient;
  mac?: Uint8Array;
  sealed: Uint8Array;
}

function macLength(recipient: Recipient): number {
  return recipient.startsWith("o:") ? MAC_BYTES : 0;
}

/** The bytes of a sealed entry: "MQS1", a 1-byte recipient length, the recipient, the MAC (o:), the seal. */
export function encodeEntry(e: SealedEntry): Uint8Array {
  const r = encoder.encode(e.recipient);
  if (r.length > 255) throw new VaultError("recipient id too long");
  const m = macLength(e.recipient);
  if ((e.mac?.length ?? 0) !== m) throw new VaultError("an entry sealed to the officer's key needs its MAC");
  const out = new Uint8Array(MAGIC.length + 1 + r.length + m + e.sealed.length);
  out.set(MAGIC);
  out[MAGIC.length] = r.length;
  out.set(r, MAGIC.length + 1);
  if (e.mac !== undefined) out.set(e.mac, MAGIC.length + 1 + r.length);
  out.set(e.sealed, MAGIC.length + 1 + r.length + m);
  return out;
}

/** A sealed entry, or undefined when the bytes are not one (an entry under the old symmetric key). */
export function decodeEntry(bytes: Uint8Array): SealedEntry | undefined {
  if (bytes.length < MAGIC.length + 1 || !MAGIC.every((b, i) => bytes[i] === b)) return undefined;
  const n = bytes[MAGIC.length];
  const start = MAGIC.length + 1;
  let recipient: string;
  try {
    recipient = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(start, start + n));
  } catch {
    return undefined;
  }
  if (!/^[so]:[A-Za-z0-9._-]{1,64}$/.test(recipient)) return undefined;
  const m = macLength(recipient);
  if (bytes.length < start + n + m + MIN_SEALED) return undefined;
  const sealed = bytes.slice(start + n + m);
  return m === 0 ? { recipient, sealed } : { recipient, mac: bytes.slice(start + n, start + n + m), sealed };
}

/**
 * A pii_vault entry's bytes: under a subject's data key (AES-GCM) or sealed to the officer's key (HPKE, with
 * masq's MAC under `macKey`).
 */
export async function sealEntry(
  to: SealKey,
  field: string,
  token: string,
  hmacKeyId: string,
  original: string,
  macKey: Uint8Array,
): Promise<Uint8Array> {
  const aad = entryAad(field, token, hmacKeyId, to.recipient);
  if ("dataKey" in to) {
    return encodeEntry({
      recipient: to.recipient,
      sealed: encryptWith(to.dataKey, encoder.encode(original), aad),
    });
  }
  const sealed = await sealTo(to.publicKey, encoder.encode(original), aad);
  const mac = sealMac(macKey, entryMacParts(field, token, hmacKeyId, to.recipient, sealed));
  return encodeEntry({ recipient: to.recipient, mac, sealed });
}

/** The MAC input of a pii_vault entry: its place and its seal. */
export function entryMacParts(
  field: string,
  token: string,
  hmacKeyId: string,
  recipient: Recipient,
  sealed: Uint8Array,
): (string | Uint8Array)[] {
  return ["pii_vault", field, token, hmacKeyId, recipient, sealed];
}

/** The HPKE additional data of a pii_vault entry. */
export function entryAad(field: string, token: string, hmacKeyId: string, recipient: Recipient): string {
  return `pii_vault:${field}:${token}:${hmacKeyId}:${recipient}`;
}

/** The MAC input of a dead letter's sealed original. */
export function letterMacParts(
  messageId: string,
  hmacKeyId: string,
  recipient: Recipient,
  sealed: Uint8Array,
): (string | Uint8Array)[] {
  return ["dlq", messageId, hmacKeyId, recipient, sealed];
}

/** The HPKE additional data of a dead letter's sealed original. */
export function letterAad(messageId: string, recipient: Recipient): string {
  return `dlq:${messageId}:${recipient}`;
}

/** The attribute a dead letter's sealed original travels in (JSON: v, to, hk, ct, mac). */
export const SEALED_ATTRIBUTE = "masq_sealed";

/** A dead letter's sealed original, as the attribute holds it. */
export interface SealedLetter {
  recipient: Recipient;
  hmacKeyId: string;
  sealed: Uint8Array;
  mac: Uint8Array;
}

export function encodeLetter(l: SealedLetter): string {
  return JSON.stringify({
    v: 1,
    to: l.recipient,
    hk: l.hmacKeyId,
    ct: toBase64(l.sealed),
    mac: toBase64(l.mac),
  });
}

/** The sealed original of an attribute value, or undefined when it is not one of masq's shape. */
export function decodeLetter(text: string): SealedLetter | undefined {
  try {
    const j = JSON.parse(text);
    if (
      j?.v !== 1 || typeof j.to !== "string" || !/^[so]:[A-Za-z0-9._-]{1,64}$/.test(j.to) ||
      typeof j.hk !== "string" || !/^[A-Za-z0-9._-]{1,32}$/.test(j.hk) || typeof j.ct !== "string" ||
      typeof j.mac !== "string"
    ) return undefined;
    const sealed = fromBase64(j.ct);
    const mac = fromBase64(j.mac);
    if (sealed.length < MIN_SEALED || mac.length !== MAC_BYTES) return undefined;
    return { recipient: j.to, hmacKeyId: j.hk, sealed, mac };
  } catch {
    return undefined;
  }
}
