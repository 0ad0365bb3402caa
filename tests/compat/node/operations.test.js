'use strict';
// node-vault against hushd: token roles, sys/remount, sys/generate-root (issue 12: 14, 15, 17).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startUnsealed, refused } = require('./harness');

let server;
let vault;
let keys;

before(async () => {
  ({ server, vault, keys } = await startUnsealed());
});
after(() => server?.stop());

test('token roles: add, read, list, create a token through one, remove', async () => {
  // node-vault's schema knows Vault's older name `period`.
  await vault.addTokenRole({ role_name: 'node-web', allowed_policies: 'a,b', orphan: true,
    period: 3600 });
  const role = await vault.getTokenRole({ role_name: 'node-web' });
  assert.deepEqual(role.data.allowed_policies, ['a', 'b']);
  assert.equal(role.data.orphan, true);
  assert.equal(role.data.token_period, 3600);
  assert.deepEqual((await vault.tokenRoles()).data.keys, ['node-web']);
  const created = await vault.write('auth/token/create/node-web', { policies: ['a'] });
  assert.equal(created.auth.orphan, true);
  assert.equal(created.auth.lease_duration, 3600);
  const bad = await refused(vault.write('auth/token/create/node-web', { policies: ['c'] }));
  assert.equal(bad.status, 400);
  await vault.removeTokenRole({ role_name: 'node-web' });
  const gone = await refused(vault.getTokenRole({ role_name: 'node-web' }));
  assert.equal(gone.status, 404);
});

test('remount moves a kv mount with its data', async () => {
  await vault.mount({ mount_point: 'node-kv', type: 'kv', options: { version: '2' } });
  await vault.write('node-kv/data/app', { data: { k: 'v' } });
  const moved = await vault.remount({ from: 'node-kv', to: 'node-kv2' });
  assert.ok(moved.data.migration_id);
  const read = await vault.read('node-kv2/data/app');
  assert.deepEqual(read.data.data, { k: 'v' });
  const bad = await refused(vault.remount({ from: 'node-kv' }));
  assert.equal(bad.status, 400);
});

test('generate-root: init, status, update to complete, cancel', async () => {
  const anon = server.client();
  const started = await anon.generateRootInit({});
  assert.equal(started.started, true);
  assert.equal(started.otp.length, 28);
  const attempt = () => anon.request({ path: '/sys/generate-root/attempt', method: 'GET' });
  assert.equal((await attempt()).nonce, started.nonce);
  let r;
  for (const key of keys.slice(0, 3)) {
    r = await anon.generateRootUpdate({ key, nonce: started.nonce });
  }
  assert.equal(r.complete, true);
  const raw = Buffer.from(r.encoded_token, 'base64');
  const token = Buffer.from(raw.map((b, i) => b ^ started.otp.charCodeAt(i))).toString();
  assert.ok(token.startsWith('hvs.'));
  await anon.generateRootInit({ otp: 'C'.repeat(28) });
  await anon.generateRootCancel();
  assert.equal((await attempt()).started, false);
  const bad = await refused(anon.generateRootInit({ otp: 'short' }));
  assert.equal(bad.status, 400);
});
