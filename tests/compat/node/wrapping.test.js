'use strict';
// node-vault against hushd: response wrapping (X-Vault-Wrap-TTL through requestOptions, unwrap)
// and the cubbyhole engine.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startUnsealed, refused } = require('./harness');

let server;
let vault;

before(async () => {
  ({ server, vault } = await startUnsealed());
  await vault.write('secret/data/wrapped', { data: { pw: 'node-wrap-pw' } });
});
after(() => server?.stop());

const wrapped = { headers: { 'X-Vault-Wrap-TTL': '60s' } };

test('a wrapped read answers wrap_info; unwrap with the wrapping token gives it once', async () => {
  const r = await vault.read('secret/data/wrapped', wrapped);
  assert.equal(r.data, null);
  assert.equal(r.wrap_info.ttl, 60);
  assert.equal(r.wrap_info.creation_path, 'secret/data/wrapped');
  assert.ok(!JSON.stringify(r).includes('node-wrap-pw'));
  const app = server.client();
  app.token = r.wrap_info.token;
  const out = await app.unwrap();
  assert.equal(out.data.data.pw, 'node-wrap-pw');
  const again = await refused(app.unwrap());
  assert.equal(again.status, 400);
  assert.match(again.body.errors[0], /wrapping token is not valid/);
});

test('unwrap with the token in the body; a wrapped token creation', async () => {
  const r = await vault.tokenCreate({ policies: ['default'], ttl: '1h', requestOptions: wrapped });
  assert.equal(r.auth, null);
  assert.equal(r.wrap_info.creation_path, 'auth/token/create');
  const out = await vault.unwrap({ token: r.wrap_info.token });
  assert.equal(out.auth.accessor, r.wrap_info.wrapped_accessor);
});

test('cubbyhole: per-token storage', async () => {
  // write, not tokenCreate: node-vault's tokenCreate makes the new token the client's own.
  const created = await vault.write('auth/token/create', { policies: ['default'], ttl: '1h' });
  const app = server.client();
  app.token = created.auth.client_token;
  await app.write('cubbyhole/note', { v: 'mine' });
  assert.equal((await app.read('cubbyhole/note')).data.v, 'mine');
  assert.equal((await refused(vault.read('cubbyhole/note'))).status, 404);
});
