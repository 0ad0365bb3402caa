'use strict';
// node-vault against hushd: init, unseal (progress, reset), seal, health, mounts.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Server, refused } = require('./harness');

let server;
let vault;
let keys;

before(async () => {
  server = await Server.start();
  vault = server.client();
});
after(() => server?.stop());

test('a new server is not initialised and is sealed', async () => {
  assert.deepEqual(await vault.initialized(), { initialized: false });
  const status = await vault.status();
  assert.equal(status.initialized, false);
  assert.equal(status.sealed, true);
});

test('init returns 5 shares and a root token; a second init is refused', async () => {
  const init = await vault.init({ secret_shares: 5, secret_threshold: 3 });
  assert.equal(init.keys.length, 5);
  assert.equal(init.keys_base64.length, 5);
  assert.equal(new Set(init.keys).size, 5);
  assert.equal(typeof init.root_token, 'string');
  assert.ok(init.root_token.length > 0);
  keys = init.keys;
  vault.token = init.root_token;
  assert.deepEqual(await vault.initialized(), { initialized: true });
  const again = await refused(vault.init({ secret_shares: 1, secret_threshold: 1 }));
  assert.equal(again.status, 400);
  assert.ok(again.body.errors.length > 0);
});

test('sealed: requests are refused with 503', async () => {
  const status = await vault.status();
  assert.equal(status.sealed, true);
  assert.equal(status.t, 3);
  assert.equal(status.n, 5);
  const r = await refused(vault.mounts());
  assert.equal(r.status, 503);
});

test('unseal counts progress, reset starts over, the third share unseals', async () => {
  let s = await vault.unseal({ key: keys[0] });
  assert.equal(s.sealed, true);
  assert.equal(s.progress, 1);
  s = await vault.unseal({ reset: true });
  assert.equal(s.sealed, true);
  assert.equal(s.progress, 0);
  for (const [i, key] of keys.slice(1, 3).entries()) {
    s = await vault.unseal({ key });
    assert.equal(s.progress, i + 1);
    assert.equal(s.sealed, true);
  }
  s = await vault.unseal({ key: keys[3] });
  assert.equal(s.sealed, false);
  assert.equal(s.progress, 0);
  assert.equal((await vault.status()).sealed, false);
});

test('health reports initialised and unsealed', async () => {
  const h = await vault.health();
  assert.equal(h.initialized, true);
  assert.equal(h.sealed, false);
  assert.equal(h.standby, false);
});

test('mount, list mounts and unmount a kv v2 engine', async () => {
  await vault.mount({ mount_point: 'kvtest', type: 'kv', options: { version: '2' } });
  const mounts = await vault.mounts();
  // Vault answers the mounts both at the top level and under data.
  assert.equal(mounts.data['kvtest/'].type, 'kv');
  assert.equal(mounts.data['kvtest/'].options.version, '2');
  assert.equal(mounts.data['sys/'].type, 'system');
  await vault.unmount({ mount_point: 'kvtest' });
  assert.equal((await vault.mounts()).data['kvtest/'], undefined);
});

test('seal with the root token, then a write is refused until unsealed again', async () => {
  await vault.seal();
  assert.equal((await vault.status()).sealed, true);
  const r = await refused(vault.write('sys/policy/p', { policy: '' }));
  assert.equal(r.status, 503);
  for (const key of keys.slice(2, 5)) await vault.unseal({ key });
  assert.equal((await vault.status()).sealed, false);
});

test('a wrong token is refused with 403', async () => {
  const stranger = server.client('hvs.not-a-token');
  const r = await refused(stranger.mounts());
  assert.equal(r.status, 403);
  assert.ok(r.body.errors.length > 0);
});
