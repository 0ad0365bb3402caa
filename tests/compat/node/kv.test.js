'use strict';
// node-vault against hushd: KV version 2 at secret/ (write, read, versions, check-and-set, patch,
// metadata, list, soft delete, undelete, destroy). node-vault has a call for destroy
// (destroySecretVersions); the rest goes through its generic read/write/update/list/delete.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startUnsealed, refused } = require('./harness');

let server;
let vault;

before(async () => {
  ({ server, vault } = await startUnsealed());
});
after(() => server?.stop());

test('write returns the version metadata; read returns data and metadata', async () => {
  const w1 = await vault.write('secret/data/app/db', { data: { user: 'app', password: 'pw-1' } });
  assert.equal(w1.data.version, 1);
  assert.equal(w1.data.destroyed, false);
  assert.equal(w1.data.deletion_time, '');
  assert.ok(Date.parse(w1.data.created_time) > 0);

  const r = await vault.read('secret/data/app/db');
  assert.deepEqual(r.data.data, { user: 'app', password: 'pw-1' });
  assert.equal(r.data.metadata.version, 1);
  assert.equal(r.data.metadata.destroyed, false);
  assert.equal(r.data.metadata.created_time, w1.data.created_time);
});

test('a second write makes version 2; each version can still be read', async () => {
  const w2 = await vault.write('secret/data/app/db', { data: { user: 'app', password: 'pw-2' } });
  assert.equal(w2.data.version, 2);
  assert.equal((await vault.read('secret/data/app/db')).data.data.password, 'pw-2');
  const v1 = await vault.read('secret/data/app/db?version=1');
  assert.equal(v1.data.data.password, 'pw-1');
  assert.equal(v1.data.metadata.version, 1);
});

test('reading a path never written is 404', async () => {
  const r = await refused(vault.read('secret/data/app/nothing-here'));
  assert.equal(r.status, 404);
});

test('check-and-set: a stale cas is refused with 400, the current one is accepted', async () => {
  const r = await refused(
    vault.write('secret/data/app/db', { options: { cas: 1 }, data: { password: 'stale' } }),
  );
  assert.equal(r.status, 400);
  assert.match(r.body.errors.join(' '), /check-and-set/);
  const ok = await vault.write('secret/data/app/db', { options: { cas: 2 }, data: { user: 'app', password: 'pw-3' } });
  assert.equal(ok.data.version, 3);
  // cas 0: write only if the key does not exist yet.
  const exists = await refused(vault.write('secret/data/app/db', { options: { cas: 0 }, data: { x: '1' } }));
  assert.equal(exists.status, 400);
});

test('a merge patch (node-vault update) keeps the fields it does not name', async () => {
  const p = await vault.update('secret/data/app/db', { data: { password: 'pw-4', port: '5432' } });
  assert.equal(p.data.version, 4);
  const r = await vault.read('secret/data/app/db');
  assert.deepEqual(r.data.data, { user: 'app', password: 'pw-4', port: '5432' });
});

test('metadata: versions, current/oldest version, settings and custom metadata', async () => {
  await vault.write('secret/metadata/app/db', {
    max_versions: 10,
    cas_required: false,
    custom_metadata: { owner: 'team-a' },
  });
  const m = await vault.read('secret/metadata/app/db');
  assert.equal(m.data.current_version, 4);
  // Vault leaves oldest_version at 0 until versions are trimmed (see `vault kv metadata get`).
  assert.equal(m.data.oldest_version, 0);
  assert.equal(m.data.max_versions, 10);
  assert.equal(m.data.cas_required, false);
  assert.deepEqual(m.data.custom_metadata, { owner: 'team-a' });
  assert.deepEqual(Object.keys(m.data.versions).sort(), ['1', '2', '3', '4']);
  assert.equal(m.data.versions['2'].destroyed, false);
  assert.equal(m.data.versions['2'].deletion_time, '');
  assert.ok(Date.parse(m.data.created_time) > 0);
  assert.ok(Date.parse(m.data.updated_time) >= Date.parse(m.data.created_time));
});

test('max_versions keeps only the newest versions', async () => {
  await vault.write('secret/metadata/app/short', { max_versions: 2 });
  for (let i = 1; i <= 3; i++) await vault.write('secret/data/app/short', { data: { n: String(i) } });
  const m = await vault.read('secret/metadata/app/short');
  assert.equal(m.data.current_version, 3);
  assert.equal(m.data.oldest_version, 2);
  assert.deepEqual(Object.keys(m.data.versions).sort(), ['2', '3']);
  const gone = await refused(vault.read('secret/data/app/short?version=1'));
  assert.equal(gone.status, 404);
});

test('list shows keys and folders under a prefix', async () => {
  await vault.write('secret/data/app/api/key', { data: { k: 'v' } });
  const l = await vault.list('secret/metadata/app');
  assert.deepEqual(l.data.keys.sort(), ['api/', 'db', 'short']);
  const top = await vault.list('secret/metadata/');
  assert.deepEqual(top.data.keys, ['app/']);
  const none = await refused(vault.list('secret/metadata/nothing'));
  assert.equal(none.status, 404);
});

test('delete (latest version) hides it: a read is 404 with the deletion time', async () => {
  await vault.delete('secret/data/app/db');
  const r = await refused(vault.read('secret/data/app/db'));
  assert.equal(r.status, 404);
  // Vault still sends the metadata of a soft-deleted version with the 404.
  assert.equal(r.body.data.data, null);
  assert.equal(r.body.data.metadata.version, 4);
  assert.ok(Date.parse(r.body.data.metadata.deletion_time) > 0);
  // Older versions are untouched.
  assert.equal((await vault.read('secret/data/app/db?version=3')).data.data.password, 'pw-3');
  const m = await vault.read('secret/metadata/app/db');
  assert.notEqual(m.data.versions['4'].deletion_time, '');
  assert.equal(m.data.versions['3'].deletion_time, '');
});

test('delete by version, then undelete brings the versions back', async () => {
  await vault.write('secret/delete/app/db', { versions: [2, 3] });
  assert.equal((await refused(vault.read('secret/data/app/db?version=2'))).status, 404);
  assert.equal((await refused(vault.read('secret/data/app/db?version=3'))).status, 404);
  await vault.write('secret/undelete/app/db', { versions: [2, 3, 4] });
  assert.equal((await vault.read('secret/data/app/db?version=2')).data.data.password, 'pw-2');
  const latest = await vault.read('secret/data/app/db');
  assert.equal(latest.data.metadata.version, 4);
  assert.equal(latest.data.metadata.deletion_time, '');
  assert.equal(latest.data.data.password, 'pw-4');
});

test('destroySecretVersions destroys for good: undelete cannot bring it back', async () => {
  await vault.destroySecretVersions({ path: 'app/db', versions: [1] });
  const r = await refused(vault.read('secret/data/app/db?version=1'));
  assert.equal(r.status, 404);
  assert.equal(r.body.data.metadata.destroyed, true);
  await vault.write('secret/undelete/app/db', { versions: [1] });
  assert.equal((await refused(vault.read('secret/data/app/db?version=1'))).status, 404);
  const m = await vault.read('secret/metadata/app/db');
  assert.equal(m.data.versions['1'].destroyed, true);
  assert.equal(m.data.versions['2'].destroyed, false);
});

test('deleting the metadata removes every version and the key from the list', async () => {
  await vault.delete('secret/metadata/app/db');
  assert.equal((await refused(vault.read('secret/data/app/db?version=2'))).status, 404);
  assert.equal((await refused(vault.read('secret/metadata/app/db'))).status, 404);
  const l = await vault.list('secret/metadata/app');
  assert.deepEqual(l.data.keys.sort(), ['api/', 'short']);
});

test('cas_required on the mount: a write without cas is refused', async () => {
  await vault.write('secret/config', { cas_required: true, max_versions: 5 });
  const cfg = await vault.read('secret/config');
  assert.equal(cfg.data.cas_required, true);
  assert.equal(cfg.data.max_versions, 5);
  const r = await refused(vault.write('secret/data/strict', { data: { a: '1' } }));
  assert.equal(r.status, 400);
  const ok = await vault.write('secret/data/strict', { options: { cas: 0 }, data: { a: '1' } });
  assert.equal(ok.data.version, 1);
  await vault.write('secret/config', { cas_required: false, max_versions: 0 });
});
