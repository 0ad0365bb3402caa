'use strict';
// node-vault against hushd: the token store (create, create-orphan, lookup, lookup-self,
// lookup-accessor, renew, renew-self, revoke, revoke-self, revoke-orphan, num_uses) and the rule
// that child tokens die with their parent.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startUnsealed, refused } = require('./harness');

let server;
let vault;
let rootToken;

before(async () => {
  ({ server, vault, rootToken } = await startUnsealed());
  await vault.addPolicy({ name: 'reader', rules: 'path "secret/data/*" {\n  capabilities = ["read"]\n}\n' });
  // Vault's default policy does not let a token make children: this one does.
  await vault.addPolicy({ name: 'creator', rules: 'path "auth/token/create" {\n  capabilities = ["update"]\n}\n' });
  await vault.write('secret/data/t', { data: { v: 'token-test' } });
});
after(() => server?.stop());

/**
 * node-vault's tokenCreate/tokenRenew put the token they get back on the client that made the
 * call (they are "token sources"); put the caller's own token back afterwards.
 */
async function asCaller(client, call) {
  const own = client.token;
  try {
    return await call(client);
  } finally {
    client.token = own;
  }
}

const create = (client, args) => asCaller(client, (c) => c.tokenCreate(args));

test('tokenCreate returns an auth block with the asked policies, TTL, metadata', async () => {
  const r = await create(vault, {
    policies: ['reader'],
    ttl: '1h',
    renewable: true,
    meta: { app: 'billing' },
    display_name: 'ci',
  });
  assert.equal(r.auth.lease_duration, 3600);
  assert.equal(r.auth.renewable, true);
  assert.deepEqual(r.auth.policies.sort(), ['default', 'reader']);
  assert.deepEqual(r.auth.metadata, { app: 'billing' });
  assert.equal(typeof r.auth.client_token, 'string');
  assert.equal(typeof r.auth.accessor, 'string');
  assert.notEqual(r.auth.accessor, r.auth.client_token);
  assert.equal(r.auth.orphan, false);

  const l = await vault.tokenLookup({ token: r.auth.client_token });
  assert.equal(l.data.id, r.auth.client_token);
  assert.equal(l.data.accessor, r.auth.accessor);
  assert.deepEqual(l.data.policies.sort(), ['default', 'reader']);
  assert.equal(l.data.display_name, 'token-ci');
  assert.deepEqual(l.data.meta, { app: 'billing' });
  assert.equal(l.data.creation_ttl, 3600);
  assert.ok(l.data.ttl > 3590 && l.data.ttl <= 3600, `ttl ${l.data.ttl}`);
  assert.equal(l.data.renewable, true);
  assert.equal(l.data.orphan, false);
  assert.equal(l.data.num_uses, 0);
  assert.equal(l.data.path, 'auth/token/create');
});

test('lookup-self with the new token; lookup-accessor hides the token id', async () => {
  const r = await create(vault, { policies: ['reader'], ttl: '10m' });
  const self = await server.client(r.auth.client_token).tokenLookupSelf();
  assert.equal(self.data.id, r.auth.client_token);
  assert.equal(self.data.accessor, r.auth.accessor);
  assert.ok(self.data.policies.includes('reader'));

  const byAccessor = await vault.tokenLookupAccessor({ accessor: r.auth.accessor });
  assert.equal(byAccessor.data.id, '');
  assert.equal(byAccessor.data.accessor, r.auth.accessor);
  assert.ok(byAccessor.data.policies.includes('reader'));

  const root = await vault.tokenLookupSelf();
  assert.deepEqual(root.data.policies, ['root']);
  assert.equal(root.data.ttl, 0);
});

test('a token not known to the store: lookup is 403, using it is 403', async () => {
  const r = await refused(vault.tokenLookup({ token: 'hvs.nope' }));
  assert.equal(r.status, 403);
  assert.equal((await refused(server.client('hvs.nope').tokenLookupSelf())).status, 403);
});

test('tokenRenew extends a renewable token by the increment; tokenRenewSelf too', async () => {
  const r = await create(vault, { policies: ['reader'], ttl: '10m' });
  const token = r.auth.client_token;
  const renewed = await asCaller(vault, (c) => c.tokenRenew({ token, increment: '2h' }));
  assert.equal(renewed.auth.client_token, token);
  assert.equal(renewed.auth.lease_duration, 7200);
  const l = await vault.tokenLookup({ token });
  assert.ok(l.data.ttl > 7190 && l.data.ttl <= 7200, `ttl ${l.data.ttl}`);
  assert.ok(Date.parse(l.data.expire_time) > Date.now() + 7_000_000);

  const self = server.client(token);
  const s = await self.tokenRenewSelf({ increment: '30m' });
  assert.equal(s.auth.lease_duration, 1800);
  assert.equal(self.token, token);
  assert.ok((await self.tokenLookupSelf()).data.ttl <= 1800);
});

test('lookup shows when a token was last renewed (last_renewal_time, last_renewal)', async () => {
  const r = await create(vault, { policies: ['reader'], ttl: '10m' });
  const token = r.auth.client_token;
  const fresh = await vault.tokenLookup({ token });
  assert.equal(fresh.data.last_renewal_time, undefined);
  assert.ok(Date.parse(fresh.data.issue_time) > 0);
  await asCaller(vault, (c) => c.tokenRenew({ token, increment: '20m' }));
  const renewed = await vault.tokenLookup({ token });
  assert.equal(typeof renewed.data.last_renewal_time, 'number');
  assert.ok(renewed.data.last_renewal_time >= fresh.data.creation_time);
  assert.equal(Math.floor(Date.parse(renewed.data.last_renewal) / 1000), renewed.data.last_renewal_time);
});

test('a token created non-renewable cannot be renewed', async () => {
  const r = await create(vault, { policies: ['reader'], ttl: '10m', renewable: false });
  const e = await refused(asCaller(vault, (c) => c.tokenRenew({ token: r.auth.client_token })));
  assert.equal(e.status, 400);
  assert.equal((await vault.tokenLookup({ token: r.auth.client_token })).data.renewable, false);
});

test('explicit_max_ttl caps a renewal', async () => {
  const r = await create(vault, { policies: ['reader'], ttl: '10m', explicit_max_ttl: '15m' });
  const renewed = await asCaller(vault, (c) => c.tokenRenew({ token: r.auth.client_token, increment: '1h' }));
  assert.ok(renewed.auth.lease_duration <= 900 && renewed.auth.lease_duration > 890,
    `lease_duration ${renewed.auth.lease_duration}`);
  assert.equal((await vault.tokenLookup({ token: r.auth.client_token })).data.explicit_max_ttl, 900);
});

test('tokenRevoke: the token stops working, lookup is 403', async () => {
  const r = await create(vault, { policies: ['reader'] });
  const t = server.client(r.auth.client_token);
  assert.equal((await t.read('secret/data/t')).data.data.v, 'token-test');
  await vault.tokenRevoke({ token: r.auth.client_token });
  assert.equal((await refused(t.read('secret/data/t'))).status, 403);
  assert.equal((await refused(vault.tokenLookup({ token: r.auth.client_token }))).status, 403);
  assert.equal((await refused(vault.tokenLookupAccessor({ accessor: r.auth.accessor }))).status, 400);
});

test('tokenRevokeSelf revokes the caller', async () => {
  const r = await create(vault, { policies: ['reader'] });
  const t = server.client(r.auth.client_token);
  await t.tokenRevokeSelf();
  assert.equal((await refused(t.tokenLookupSelf())).status, 403);
});

test('child tokens die with their parent; an orphan does not', async () => {
  const parent = await create(vault, { policies: ['reader', 'creator'], ttl: '1h' });
  const parentClient = server.client(parent.auth.client_token);
  // The parent makes a child (a non-root token may only give policies it holds) and a grandchild.
  const child = await create(parentClient, { policies: ['reader', 'creator'], ttl: '30m' });
  assert.equal((await vault.tokenLookup({ token: child.auth.client_token })).data.orphan, false);
  assert.equal(parentClient.token, parent.auth.client_token);
  const grandchild = await create(server.client(child.auth.client_token), { policies: ['reader'] });
  // Root makes an orphan.
  const orphan = await asCaller(vault, (c) => c.tokenCreateOrphan({ policies: ['reader'] }));
  assert.equal(orphan.auth.orphan, true);
  assert.equal((await vault.tokenLookup({ token: orphan.auth.client_token })).data.orphan, true);

  // A policy the parent does not hold: Vault answers 400 "child policies must be subset of parent".
  const refusedPolicy = await refused(create(parentClient, { policies: ['root'] }));
  assert.equal(refusedPolicy.status, 400);

  await vault.tokenRevoke({ token: parent.auth.client_token });
  for (const t of [parent, child, grandchild]) {
    const r = await refused(server.client(t.auth.client_token).tokenLookupSelf());
    assert.equal(r.status, 403);
  }
  const alive = await server.client(orphan.auth.client_token).tokenLookupSelf();
  assert.equal(alive.data.id, orphan.auth.client_token);
});

test('tokenRevokeOrphan revokes the parent alone; its children become orphans', async () => {
  const parent = await create(vault, { policies: ['reader', 'creator'] });
  const child = await create(server.client(parent.auth.client_token), { policies: ['reader'] });
  assert.equal((await vault.tokenLookup({ token: child.auth.client_token })).data.orphan, false);
  await vault.tokenRevokeOrphan({ token: parent.auth.client_token });
  assert.equal((await refused(vault.tokenLookup({ token: parent.auth.client_token }))).status, 403);
  const l = await vault.tokenLookup({ token: child.auth.client_token });
  assert.equal(l.data.orphan, true);
  assert.equal((await server.client(child.auth.client_token).read('secret/data/t')).data.data.v, 'token-test');
});

test('num_uses: a token with 2 uses works twice, then is gone', async () => {
  const r = await create(vault, { policies: ['reader'], num_uses: 2 });
  assert.equal((await vault.tokenLookup({ token: r.auth.client_token })).data.num_uses, 2);
  const t = server.client(r.auth.client_token);
  assert.equal((await t.read('secret/data/t')).data.data.v, 'token-test');
  assert.equal((await t.read('secret/data/t')).data.data.v, 'token-test');
  assert.equal((await refused(t.read('secret/data/t'))).status, 403);
  assert.equal((await refused(vault.tokenLookup({ token: r.auth.client_token }))).status, 403);
});

test('the root client still holds the root token after all of the above', () => {
  assert.equal(vault.token, rootToken);
});
