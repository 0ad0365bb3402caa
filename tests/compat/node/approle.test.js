'use strict';
// node-vault against hushd: AppRole (enableAuth, addApproleRole, getApproleRole, approleRoles,
// role-id, secret-id, secret-id lookup/list/destroy, approleLogin) and the token the login gives.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startUnsealed, refused } = require('./harness');

let server;
let vault;

before(async () => {
  ({ server, vault } = await startUnsealed());
  await vault.addPolicy({ name: 'app-read', rules: 'path "secret/data/app/*" {\n  capabilities = ["read"]\n}\n' });
  await vault.write('secret/data/app/db', { data: { password: 'approle-pw' } });
});
after(() => server?.stop());

/** Log in on a fresh client, as an application would; node-vault keeps the token it gets. */
async function login(role_id, secret_id) {
  const app = server.client();
  const r = await app.approleLogin({ role_id, secret_id });
  assert.equal(app.token, r.auth.client_token);
  return { app, auth: r.auth };
}

test('enableAuth mounts approle; auths lists it', async () => {
  await vault.enableAuth({ mount_point: 'approle', type: 'approle', description: 'apps' });
  const auths = await vault.auths();
  assert.equal(auths.data['approle/'].type, 'approle');
  assert.equal(auths.data['approle/'].description, 'apps');
  assert.equal(auths.data['token/'].type, 'token');
});

test('addApproleRole then getApproleRole and approleRoles', async () => {
  await vault.addApproleRole({
    role_name: 'web',
    policies: 'app-read',
    token_ttl: 600,
    token_max_ttl: 1200,
    secret_id_ttl: 3600,
  });
  const role = await vault.getApproleRole({ role_name: 'web' });
  assert.deepEqual(role.data.token_policies, ['app-read']);
  assert.equal(role.data.token_ttl, 600);
  assert.equal(role.data.token_max_ttl, 1200);
  assert.equal(role.data.secret_id_ttl, 3600);
  assert.equal(role.data.bind_secret_id, true);
  assert.deepEqual((await vault.approleRoles()).data.keys, ['web']);
  assert.equal((await refused(vault.getApproleRole({ role_name: 'nope' }))).status, 404);
});

test('role-id reads back; updateApproleRoleId sets a chosen one', async () => {
  const id = await vault.getApproleRoleId({ role_name: 'web' });
  assert.match(id.data.role_id, /^[0-9a-f-]{36}$/);
  await vault.updateApproleRoleId({ role_name: 'web', role_id: 'web-role-id' });
  assert.equal((await vault.getApproleRoleId({ role_name: 'web' })).data.role_id, 'web-role-id');
});

test('secret-id: generate with metadata, lookup, list accessors', async () => {
  const s = await vault.getApproleRoleSecret({ role_name: 'web', metadata: '{"env":"test"}' });
  assert.equal(typeof s.data.secret_id, 'string');
  assert.equal(typeof s.data.secret_id_accessor, 'string');
  assert.equal(s.data.secret_id_ttl, 3600);

  const l = await vault.approleSecretLookup({ role_name: 'web', secret_id: s.data.secret_id });
  assert.equal(l.data.secret_id_accessor, s.data.secret_id_accessor);
  assert.deepEqual(l.data.metadata, { env: 'test' });
  assert.equal(l.data.secret_id_num_uses, 0);
  assert.ok(Date.parse(l.data.expiration_time) > Date.now());

  const byAccessor = await vault.approleSecretAccessorLookup({
    role_name: 'web',
    secret_id_accessor: s.data.secret_id_accessor,
  });
  assert.deepEqual(byAccessor.data.metadata, { env: 'test' });

  const list = await vault.approleSecretAccessors({ role_name: 'web' });
  assert.deepEqual(list.data.keys, [s.data.secret_id_accessor]);
});

test('approleLogin gives a token with the role policies; it reads and is refused elsewhere', async () => {
  const s = await vault.getApproleRoleSecret({ role_name: 'web' });
  const { app, auth } = await login('web-role-id', s.data.secret_id);
  assert.deepEqual(auth.policies.sort(), ['app-read', 'default']);
  assert.deepEqual(auth.token_policies.sort(), ['app-read', 'default']);
  assert.equal(auth.lease_duration, 600);
  assert.equal(auth.renewable, true);
  assert.equal(auth.metadata.role_name, 'web');

  assert.equal((await app.read('secret/data/app/db')).data.data.password, 'approle-pw');
  const self = await app.tokenLookupSelf();
  assert.equal(self.data.path, 'auth/approle/login');
  assert.equal(self.data.meta.role_name, 'web');
  assert.ok(self.data.ttl <= 600 && self.data.ttl > 590);

  const w = await refused(app.write('secret/data/app/db', { data: { password: 'x' } }));
  assert.equal(w.status, 403);
  assert.equal((await refused(app.getApproleRole({ role_name: 'web' }))).status, 403);

  // token_max_ttl caps a renewal.
  const renewed = await app.tokenRenewSelf({ increment: '1h' });
  assert.ok(renewed.auth.lease_duration <= 1200 && renewed.auth.lease_duration > 1190,
    `lease_duration ${renewed.auth.lease_duration}`);
});

test('a wrong secret-id or role-id is refused with 400 and gives no token', async () => {
  const app = server.client();
  const badSecret = await refused(app.approleLogin({ role_id: 'web-role-id', secret_id: 'not-a-secret-id' }));
  assert.equal(badSecret.status, 400);
  const s = await vault.getApproleRoleSecret({ role_name: 'web' });
  const badRole = await refused(app.approleLogin({ role_id: 'nobody', secret_id: s.data.secret_id }));
  assert.equal(badRole.status, 400);
  assert.equal(app.token, undefined);
});

test('approleSecretDestroy: the destroyed secret-id no longer logs in', async () => {
  const s = await vault.getApproleRoleSecret({ role_name: 'web' });
  await login('web-role-id', s.data.secret_id);
  await vault.approleSecretDestroy({ role_name: 'web', secret_id: s.data.secret_id });
  const r = await refused(server.client().approleLogin({ role_id: 'web-role-id', secret_id: s.data.secret_id }));
  assert.equal(r.status, 400);
  const l = await vault.approleSecretAccessors({ role_name: 'web' });
  assert.ok(!l.data.keys.includes(s.data.secret_id_accessor));
});

test('secret_id_num_uses 1: the second login with the same secret-id is refused', async () => {
  await vault.addApproleRole({ role_name: 'once', policies: 'app-read', secret_id_num_uses: 1 });
  const roleId = (await vault.getApproleRoleId({ role_name: 'once' })).data.role_id;
  const s = await vault.getApproleRoleSecret({ role_name: 'once' });
  const { auth } = await login(roleId, s.data.secret_id);
  assert.ok(auth.policies.includes('app-read'));
  const r = await refused(server.client().approleLogin({ role_id: roleId, secret_id: s.data.secret_id }));
  assert.equal(r.status, 400);
});

test('deleteApproleRole: the role is gone and its role-id no longer logs in', async () => {
  const s = await vault.getApproleRoleSecret({ role_name: 'web' });
  await vault.deleteApproleRole({ role_name: 'web' });
  assert.equal((await refused(vault.getApproleRole({ role_name: 'web' }))).status, 404);
  assert.deepEqual((await vault.approleRoles()).data.keys, ['once']);
  const r = await refused(server.client().approleLogin({ role_id: 'web-role-id', secret_id: s.data.secret_id }));
  assert.equal(r.status, 400);
});

test('disableAuth unmounts approle and revokes the tokens it gave', async () => {
  const roleId = (await vault.getApproleRoleId({ role_name: 'once' })).data.role_id;
  const s = await vault.getApproleRoleSecret({ role_name: 'once' });
  const { app } = await login(roleId, s.data.secret_id);
  await vault.disableAuth({ mount_point: 'approle' });
  assert.equal((await vault.auths()).data['approle/'], undefined);
  assert.equal((await refused(app.tokenLookupSelf())).status, 403);
});
