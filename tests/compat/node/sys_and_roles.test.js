'use strict';
// Issue 12, items 1-4 and 10, with node-vault where it has the call (generic read/write where not):
// audit `path` option, audit-hash of an unknown device, tune reads, AppRole lookups of what is
// gone, and roles' token_type.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startUnsealed, refused } = require('./harness');

const SYSTEM_TTL = 768 * 3600;

let server;
let vault;

before(async () => {
  ({ server, vault } = await startUnsealed());
});
after(() => server?.stop());

test('1. enableAudit accepts options.path, the old name of file_path', async () => {
  const log = path.join(server.tmp, 'old-name.log');
  await vault.enableAudit({ name: 'oldname', type: 'file', options: { path: log } });
  assert.equal((await vault.audits()).data['oldname/'].options.path, log);
  await vault.disableAudit({ name: 'oldname' });
});

test('2. sys/audit-hash of a device not enabled: 400, unknown audit backend "X/"', async () => {
  const r = await refused(vault.write('sys/audit-hash/tmpfile', { input: 'x' }));
  assert.equal(r.status, 400);
  assert.deepEqual(r.body.errors, ['unknown audit backend "tmpfile/"']);
});

test('3. tune reads give the effective TTLs, and token_type for auth mounts', async () => {
  const m = await vault.read('sys/mounts/secret/tune');
  assert.equal(m.data.default_lease_ttl, SYSTEM_TTL);
  assert.equal(m.data.max_lease_ttl, SYSTEM_TTL);
  const a = await vault.read('sys/auth/token/tune');
  assert.equal(a.data.max_lease_ttl, SYSTEM_TTL);
  assert.equal(a.data.token_type, 'default-service');
});

test('4. approle lookups: destroyed secret id 204, unknown accessor 404', async () => {
  await vault.enableAuth({ mount_point: 'approle', type: 'approle' });
  await vault.addApproleRole({ role_name: 'web' });
  const s = await vault.getApproleRoleSecret({ role_name: 'web' });
  await vault.approleSecretDestroy({ role_name: 'web', secret_id: s.data.secret_id });
  const gone = await vault.approleSecretLookup({ role_name: 'web', secret_id: s.data.secret_id });
  assert.ok(!gone, `no body, got ${JSON.stringify(gone)}`);
  const r = await refused(vault.approleSecretAccessorLookup({
    role_name: 'web', secret_id_accessor: s.data.secret_id_accessor,
  }));
  assert.equal(r.status, 404);
  assert.match(r.body.errors[0], /failed to find accessor entry for secret_id_accessor/);
});

test('10. token_type "service" reads back as "service", unset as "default"', async () => {
  // addApproleRole and addKubernetesRole send only the fields of their schema (no token_type):
  // written with the generic call, read back with node-vault's own.
  await vault.write('auth/approle/role/svc', { token_type: 'service' });
  assert.equal((await vault.getApproleRole({ role_name: 'svc' })).data.token_type, 'service');
  assert.equal((await vault.getApproleRole({ role_name: 'web' })).data.token_type, 'default');
  await vault.enableAuth({ mount_point: 'kubernetes', type: 'kubernetes' });
  await vault.write('auth/kubernetes/role/svc', {
    bound_service_account_names: 'app',
    bound_service_account_namespaces: 'default',
    token_type: 'service',
  });
  assert.equal((await vault.getKubernetesRole({ mount_point: 'kubernetes', role_name: 'svc' })).data.token_type, 'service');
  const r = await refused(vault.write('auth/approle/role/b', { token_type: 'batch' }));
  assert.equal(r.status, 400);
});
