/**
 * Subject keys (envelope encryption, the key store's rows): a person's originals are AES-256-GCM under a
 * random 32-byte data key, stored only wrapped (AES-256-GCM) under its epoch's wrapping key. An epoch is one
 * HPKE encapsulation to the privacy officer's key (lib/seal.ts: openEpochKey), opened by each `masq run`
 * process at start and again every few minutes; the officer recomputes an epoch's wrapping key from its
 * `enc` with the private key. Deleting a person's rows (`forget`) destroys their data keys, so every copy of
 * what was encrypted under them (vault, dead letters, backups of the main database) is unreadable.
 *
 * Cost: one encapsulation per process per epoch, and per person first met in an epoch a random key, one
 * AES-GCM wrap and a MAC; each original then costs one AES-GCM, as the old symmetric vault did.
 *
 * @module
 */
import { VaultError } from "./errors.ts";
import {
  decryptWith,
  encryptWith,
  epochKeyFromEnc,
  macEqual,
  type OfficerKeyring,
  type OfficerPublicKey,
  openEpochKey,
  sealMac,
} from "./seal.ts";

/** One row of masq_subject_keys: a data key of `subject`, wrapped under the epoch whose `enc` it carries. */
export interface SubjectKeyRow {
  keyId: string;
  subject: string;
  /** The epoch's HPKE encapsulated key (shared by every row of that epoch). */
  epochEnc: Uint8Array;
  wrappedKey: Uint8Array;
  officerKeyId: string;
  mac: Uint8Array;
}

/** What a `masq run` process holds of its current epoch (no HPKE context, no private key). */
export interface Epoch {
  enc: Uint8Array;
  officerKeyId: string;
  wrapKey: Uint8Array;
}

/** Opens a new epoch to the officer's key (one HPKE encapsulation). */
export async function openEpoch(officer: OfficerPublicKey): Promise<Epoch> {
  const { enc, wrapKey } = await openEpochKey(officer);
  return { enc, wrapKey, officerKeyId: officer.keyId };
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += HEX[b];
  return out;
}

function subjectMacParts(r: Omit<SubjectKeyRow, "mac">): (string | Uint8Array)[] {
  return ["masq_subject_keys", r.keyId, r.subject, r.epochEnc, r.officerKeyId, r.wrappedKey];
}

function wrapAad(keyId: string, subject: string): string {
  return `masq_subject_keys:${keyId}:${subject}`;
}

/** Makes a data key of `subject` in `epoch`: the row to store (wrapped, MACed) and the key to encrypt with. */
export function newSubjectKey(
  subject: string,
  epoch: Epoch,
  macKey: Uint8Array,
): { row: SubjectKeyRow; dataKey: Uint8Array } {
  const dataKey = crypto.getRandomValues(new Uint8Array(32));
  const keyId = hex(crypto.getRandomValues(new Uint8Array(16)));
  const wrappedKey = encryptWith(epoch.wrapKey, dataKey, wrapAad(keyId, subject));
  const row = { keyId, subject, epochEnc: epoch.enc, wrappedKey, officerKeyId: epoch.officerKeyId };
  return { row: { ...row, mac: sealMac(macKey, subjectMacParts(row)) }, dataKey };
}

/** The MAC of a key store row under `macKey`. */
export function subjectKeyMac(macKey: Uint8Array, row: Omit<SubjectKeyRow, "mac">): Uint8Array {
  return sealMac(macKey, subjectMacParts(row));
}

/** Whether masq made this key store row (its MAC verifies under `macKey`). */
export function subjectKeyGenuine(row: SubjectKeyRow, macKey: Uint8Array): boolean {
  return macEqual(sealMac(macKey, subjectMacParts(row)), row.mac);
}

/**
 * Opens a subject's data key with the officer's keyring (VaultError when it cannot). `epochs` caches each
 * epoch's wrapping key by enc, so a batch of rows costs one HPKE decapsulation per epoch.
 */
export async function openSubjectKey(
  row: SubjectKeyRow,
  ring: OfficerKeyring,
  epochs: Map<string, Promise<Uint8Array>> = new Map(),
): Promise<Uint8Array> {
  const officer = ring.privateKeys.get(row.officerKeyId);
  if (officer === undefined) {
    throw new VaultError(
      `is sealed to the privacy officer's key ${row.officerKeyId}, which PII_VAULT_PRIVATE_KEY does not hold`,
    );
  }
  const at = `${row.officerKeyId}:${
    Array.from(row.epochEnc, (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
  let wrap = epochs.get(at);
  if (wrap === undefined) {
    wrap = epochKeyFromEnc(officer, row.epochEnc);
    epochs.set(at, wrap);
    wrap.catch(() => epochs.delete(at));
  }
  return decryptWith(await wrap, row.wrappedKey, wrapAad(row.keyId, row.subject));
}
