import { assert, assertEquals, assertRejects, assertThrows } from "./support/assert.ts";
import { ConfigError, VaultError } from "../lib/errors.ts";
import {
  decodeEntry,
  decodeLetter,
  decryptWith,
  encodeEntry,
  encodeLetter,
  encryptWith,
  generateOfficerKeys,
  macEqual,
  openWith,
  parseOfficerPrivateKeys,
  parseOfficerPublicKey,
  sealMac,
  sealMacKey,
  sealTo,
} from "../lib/seal.ts";
import { newSubjectKey, openEpoch, openSubjectKey, subjectKeyGenuine } from "../lib/subject_keys.ts";
import { createSealingVault, subjectOf } from "../lib/sealing.ts";
import { createSubjectKeyStore, type SubjectKey, type SubjectKeyStore } from "../lib/keystore.ts";

const HMAC = "a-test-hmac-key-of-enough-length-0123456789";

Deno.test("parseOfficerPublicKey() refuses a private key, another format and a key id that does not match", async () => {
  const pair = await generateOfficerKeys();
  assertEquals((await parseOfficerPublicKey(pair.publicText, "PII_VAULT_PUBLIC_KEY")).keyId, pair.keyId);
  const refused = async (text: string, re: RegExp) => {
    const err = await assertRejects(() => parseOfficerPublicKey(text, "PII_VAULT_PUBLIC_KEY"), ConfigError);
    assert(re.test(err.message), err.message);
    assert(!err.message.includes(pair.privateText.split(" ")[3]), "never the key");
  };
  await refused(pair.privateText, /^PII_VAULT_PUBLIC_KEY: holds a private key/);
  await refused("ssh-ed25519 AAAA", /is not a masq vault public key/);
  await refused(pair.publicText.replace(pair.keyId, "x0000000000000000"), /key id does not match/);
});

Deno.test("parseOfficerPrivateKeys() reads several keys, the first the current one", async () => {
  const [a, b] = [await generateOfficerKeys(), await generateOfficerKeys()];
  const ring = await parseOfficerPrivateKeys(
    `# rotated\n${b.privateText}${a.privateText}`,
    "PII_VAULT_PRIVATE_KEY",
  );
  assertEquals(ring.current.keyId, b.keyId);
  assertEquals([...ring.privateKeys.keys()].sort(), [a.keyId, b.keyId].sort());
  await assertRejects(() => parseOfficerPrivateKeys(a.publicText, "PII_VAULT_PRIVATE_KEY"), ConfigError);
  await assertRejects(() => parseOfficerPrivateKeys("\n", "PII_VAULT_PRIVATE_KEY"), ConfigError);
});

Deno.test("sealTo() output opens with the private key in its own context only", async () => {
  const pair = await generateOfficerKeys();
  const pub = await parseOfficerPublicKey(pair.publicText, "p");
  const ring = await parseOfficerPrivateKeys(pair.privateText, "k");
  const sealed = await sealTo(pub.key, new TextEncoder().encode("192.0.2.1"), "ctx-a");
  const key = ring.privateKeys.get(pair.keyId)!;
  assertEquals(new TextDecoder().decode(await openWith(key, sealed, "ctx-a")), "192.0.2.1");
  await assertRejects(() => openWith(key, sealed, "ctx-b"), VaultError);
  const other = await parseOfficerPrivateKeys((await generateOfficerKeys()).privateText, "k");
  await assertRejects(
    () => openWith(other.privateKeys.get(other.current.keyId)!, sealed, "ctx-a"),
    VaultError,
  );
});

Deno.test("decodeEntry() reads what encodeEntry() wrote and nothing else (an entry under the old key is undefined)", () => {
  const e = { recipient: "o:x0123456789abcdef", mac: new Uint8Array(32).fill(1), sealed: new Uint8Array(60) };
  assertEquals(decodeEntry(encodeEntry(e)), e);
  const d = { recipient: "s:0123456789abcdef0123456789abcdef", sealed: new Uint8Array(60) };
  assertEquals(decodeEntry(encodeEntry(d)), d, "under a data key: no MAC of its own");
  assertThrows(() => encodeEntry({ ...d, mac: e.mac }), VaultError);
  assertThrows(() => encodeEntry({ ...e, mac: undefined }), VaultError);
  assertEquals(decodeEntry(crypto.getRandomValues(new Uint8Array(60))), undefined);
  assertEquals(decodeEntry(encodeEntry({ ...d, recipient: "x:bad" })), undefined);
  const l = { recipient: "o:x01", hmacKeyId: "k1", sealed: new Uint8Array(60), mac: new Uint8Array(32) };
  assertEquals(decodeLetter(encodeLetter(l)), l);
  assertEquals(decodeLetter('{"v":2}'), undefined);
  assertEquals(decodeLetter("not json"), undefined);
});

Deno.test("sealMac() separates its parts and its keys: another key, or a part moved between fields, is another MAC", () => {
  const k = sealMacKey(HMAC);
  assert(macEqual(sealMac(k, ["a", "bc"]), sealMac(k, ["a", "bc"])));
  assert(!macEqual(sealMac(k, ["a", "bc"]), sealMac(k, ["ab", "c"])));
  assert(!macEqual(sealMac(k, ["a"]), sealMac(sealMacKey(HMAC + "x"), ["a"])));
  assert(!macEqual(sealMacKey(HMAC), new TextEncoder().encode(HMAC).slice(0, 32)), "a purpose of its own");
});

Deno.test("newSubjectKey() makes a row the officer opens and whose MAC masq alone makes", async () => {
  const pair = await generateOfficerKeys();
  const pub = await parseOfficerPublicKey(pair.publicText, "p");
  const ring = await parseOfficerPrivateKeys(pair.privateText, "k");
  const epoch = await openEpoch(pub);
  const { row, dataKey } = await newSubjectKey("user-1", epoch, sealMacKey(HMAC));
  assert(subjectKeyGenuine(row, sealMacKey(HMAC)));
  assert(!subjectKeyGenuine({ ...row, subject: "user-2" }, sealMacKey(HMAC)), "bound to its subject");
  assert(!subjectKeyGenuine(row, sealMacKey("another-hmac-key-of-enough-length-012345")));
  const sealed = await encryptWith(dataKey, new TextEncoder().encode("192.0.2.1"), "ctx");
  const opened = await openSubjectKey(row, ring);
  assertEquals(new TextDecoder().decode(await decryptWith(opened, sealed, "ctx")), "192.0.2.1");
  await assertRejects(() => openSubjectKey({ ...row, subject: "user-2" }, ring), VaultError);
  const other = await openEpoch(pub);
  await assertRejects(() => openSubjectKey({ ...row, epochEnc: other.enc }, ring), VaultError); // bound to its epoch
  const stranger = await parseOfficerPrivateKeys((await generateOfficerKeys()).privateText, "k");
  stranger.privateKeys.set(pub.keyId, stranger.privateKeys.get(stranger.current.keyId)!);
  await assertRejects(() => openSubjectKey(row, stranger), VaultError); // only the officer's key
});

Deno.test("createSubjectKeyStore() makes one key per subject per epoch and forgets the old epoch's keys", async () => {
  const pub = await parseOfficerPublicKey((await generateOfficerKeys()).publicText, "p");
  const inserts: unknown[][] = [];
  const db = {
    query(_sql: string, params?: unknown[]) {
      inserts.push(params![1] as unknown[]);
      return Promise.resolve({ rows: [] });
    },
  };
  let t = 0;
  const store = createSubjectKeyStore(db, pub, sealMacKey(HMAC), { epochMs: 1000, now: () => t });
  const [a, b, a2] = await Promise.all([store.keyFor("u1"), store.keyFor("u2"), store.keyFor("u1")]);
  assertEquals(inserts, [["u1", "u2"]], "one statement for a batch's new subjects");
  assertEquals(a, a2);
  assert(a.recipient !== b.recipient);
  assertEquals(await store.keyFor("u1"), a, "kept within the epoch");
  t = 1000;
  const c = await store.keyFor("u1");
  assert(c.recipient !== a.recipient, "a new epoch, a new data key");
  assertEquals(inserts.length, 2);
});

Deno.test("subjectOf() is the user_id of a JSON object body, when it is usable as a subject", () => {
  assertEquals(subjectOf('{"user_id":"u-1"}'), "u-1");
  assertEquals(subjectOf('{"user_id":42}'), "42");
  for (
    const body of [
      "not json",
      "[]",
      '{"user_id":{}}',
      '{"user_id":""}',
      `{"user_id":"${"x".repeat(129)}"}`,
      "{}",
      // An address in any spelling: the key store keeps subjects in the clear, so none becomes one.
      '{"user_id":"203.0.113.7"}',
      '{"user_id":"ip=0:0:0:0:0:ffff:203.0.113.7"}',
      '{"user_id":3405803881}',
      '{"user_id":"\uff12\uff10\uff13.0.113.7"}',
    ]
  ) {
    assertEquals(subjectOf(body), undefined, body);
  }
});

Deno.test("createSealingVault() seals once per (value, subject key), and again after the subject's key changed", async () => {
  const pub = await parseOfficerPublicKey((await generateOfficerKeys()).publicText, "p");
  let generation = 0;
  let lookups = 0;
  const keys = new Map<string, SubjectKey>();
  const epoch = await openEpoch(pub);
  const subjects: SubjectKeyStore = {
    async keyFor(subject) {
      lookups++;
      const id = `${subject}-${generation}`;
      if (!keys.has(id)) {
        const made = await newSubjectKey(subject, epoch, sealMacKey(HMAC));
        keys.set(id, { recipient: `s:${made.row.keyId}`, dataKey: made.dataKey });
      }
      return keys.get(id)!;
    },
  };
  const vault = createSealingVault({ officer: pub, subjects, macKey: sealMacKey(HMAC), hmacKeyId: "k1" });
  const a = await vault.entry("ip", "t1", "k1", "u1", "192.0.2.1");
  const b = await vault.entry("ip", "t1", "k1", "u1", "192.0.2.1");
  assertEquals(a.ciphertext, b.ciphertext, "the seal is reused");
  const c = await vault.entry("ip", "t1", "k1", "u2", "192.0.2.1");
  assert(c.subjectKeyId !== a.subjectKeyId, "another person, another entry");
  generation++; // a new epoch: the key store now gives a new data key
  const d = await vault.entry("ip", "t1", "k1", "u1", "192.0.2.1");
  assert(d.subjectKeyId !== a.subjectKeyId, "never sealed again to a destroyed key");
  assertEquals(lookups, 4);
  const letter = await vault.letter("m1", "not json");
  assert(JSON.parse(letter.masq_sealed).to.startsWith("o:"), "no subject: the officer's key");
});
