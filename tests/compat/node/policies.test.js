'use strict';
// node-vault against hushd: ACL policies (addPolicy, getPolicy, policies, removePolicy) and a token
// limited by a policy, refused with 403 everywhere the policy does not reach.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startUnsealed, refused } = require('./harness');

let server;
let vault;
let rootToken;

const APP_READ = `
path "secret/data/app/*" {
  capabilities = ["read"]
}
path "secret/metadata/app/*" {
  capabilities = ["list"]
}
`;

before(async () => {
  ({ server, vault, rootToken } = await startUnsealed());
  await vault.write('secret/data/app/db', { data: { password: 'app-pw' } });
  await vault.write('secret/data/other/db', { data: { password: 'other-pw' } });
});
after(() => server?.stop());

/** A token from the root client; node-vault's tokenCreate switches the client to the new token. */
async function createToken(args) {
  const r = await vault.tokenCreate(args);
  assert.equal(vault.token, r.auth.client_token);
  vault.token = rootToken;
  return r.auth.client_token;
}

test('addPolicy with `rules` (the node-vault README form), then getPolicy reads it back', async () => {
  await vault.addPolicy({ name: 'app-read', rules: APP_READ });
  const p = await vault.getPolicy({ name: 'app-read' });
  assert.equal(p.name, 'app-read');
  assert.equal(p.rules, APP_READ);
  assert.equal(p.data.rules, APP_READ);
});

test('addPolicy with `policy` (the current Vault field) works too', async () => {
  const body = 'path "secret/data/other/*" {\n  capabilities = ["read", "update", "create"]\n}\n';
  await vault.addPolicy({ name: 'other-write', policy: body });
  assert.equal((await vault.getPolicy({ name: 'other-write' })).rules, body);
  const acl = await vault.read('sys/policies/acl/other-write');
  assert.equal(acl.data.name, 'other-write');
  assert.equal(acl.data.policy, body);
});

test('policies lists root, default and the new ones', async () => {
  const p = await vault.policies();
  for (const name of ['root', 'default', 'app-read', 'other-write']) {
    assert.ok(p.policies.includes(name), `${name} in ${p.policies}`);
  }
  assert.deepEqual(p.data.policies.sort(), p.policies.sort());
  const acl = await vault.list('sys/policies/acl');
  assert.ok(acl.data.keys.includes('app-read'));
});

test('a policy that does not parse is refused with 400', async () => {
  const r = await refused(vault.addPolicy({ name: 'broken', rules: 'path "x" { capabilities = ' }));
  assert.equal(r.status, 400);
  assert.equal((await refused(vault.getPolicy({ name: 'broken' }))).status, 404);
});

test('a token limited by app-read reads its path and is refused with 403 elsewhere', async () => {
  const token = await createToken({ policies: ['app-read'] });
  const app = server.client(token);
  assert.equal((await app.read('secret/data/app/db')).data.data.password, 'app-pw');
  assert.deepEqual((await app.list('secret/metadata/app/')).data.keys, ['db']);

  const cases = [
    ['write to its own path', () => app.write('secret/data/app/db', { data: { password: 'x' } })],
    ['read another path', () => app.read('secret/data/other/db')],
    ['list mounts', () => app.mounts()],
    ['write a policy', () => app.addPolicy({ name: 'mine', rules: 'path "*" { capabilities = ["sudo"] }' })],
    ['read a policy', () => app.getPolicy({ name: 'app-read' })],
    ['delete its own path', () => app.delete('secret/data/app/db')],
  ];
  for (const [what, call] of cases) {
    const r = await refused(call());
    assert.equal(r.status, 403, what);
    assert.match(r.body.errors.join(' '), /permission denied/, what);
  }
  // Nothing was changed by the refused calls.
  assert.equal((await vault.read('secret/data/app/db')).data.data.password, 'app-pw');
});

test('policies add up: app-read + other-write reach both paths', async () => {
  const token = await createToken({ policies: ['app-read', 'other-write'] });
  const both = server.client(token);
  assert.equal((await both.read('secret/data/app/db')).data.data.password, 'app-pw');
  const w = await both.write('secret/data/other/db', { data: { password: 'other-2' } });
  assert.equal(w.data.version, 2);
  assert.equal((await refused(both.write('secret/data/app/db', { data: {} }))).status, 403);
});

test('a changed policy applies at once to tokens that hold it; a removed one denies', async () => {
  const token = await createToken({ policies: ['app-read'] });
  const app = server.client(token);
  assert.equal((await refused(app.read('secret/data/other/db'))).status, 403);
  await vault.addPolicy({ name: 'app-read', rules: `${APP_READ}path "secret/data/other/*" { capabilities = ["read"] }\n` });
  assert.equal((await app.read('secret/data/other/db')).data.data.password, 'other-2');

  await vault.removePolicy({ name: 'app-read' });
  assert.equal((await refused(vault.getPolicy({ name: 'app-read' }))).status, 404);
  assert.ok(!(await vault.policies()).policies.includes('app-read'));
  assert.equal((await refused(app.read('secret/data/app/db'))).status, 403);
});

test('getPolicy on root answers like any policy: name and rules at the top level too', async () => {
  // Vault copies the data of every /v1/sys/policy/ answer to the top level (its
  // injectDataIntoTopRoutes); node-vault hands back the body as it is.
  const p = await vault.getPolicy({ name: 'root' });
  assert.equal(p.data.name, 'root');
  assert.equal(p.name, 'root');
  assert.equal(p.rules, '');
});

test('sys/capabilities for a token the store does not know is 400 "invalid token"', async () => {
  const r = await refused(vault.write('sys/capabilities', { token: 'hvs.unknown', paths: ['secret/data/app/db'] }));
  assert.equal(r.status, 400);
  assert.match(r.body.errors.join(' '), /invalid token/);
});

test('the root and default policies cannot be removed', async () => {
  assert.equal((await refused(vault.removePolicy({ name: 'root' }))).status, 400);
  assert.equal((await refused(vault.removePolicy({ name: 'default' }))).status, 400);
  assert.ok((await vault.policies()).policies.includes('default'));
});

test('capabilities-self tells a limited token what it may do', async () => {
  await vault.addPolicy({ name: 'app-read', rules: APP_READ });
  const token = await createToken({ policies: ['app-read'] });
  const app = server.client(token);
  const c = await app.write('sys/capabilities-self', { paths: ['secret/data/app/db', 'secret/data/other/db'] });
  assert.deepEqual(c['secret/data/app/db'], ['read']);
  assert.deepEqual(c['secret/data/other/db'], ['deny']);
});
