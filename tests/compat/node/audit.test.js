'use strict';
// node-vault against hushd: a file audit device (enableAudit, audits, disableAudit). Every request
// lands in the file as one JSON line with secrets and tokens HMAC'd, never in clear; sys/audit-hash
// gives the same HMAC for a value.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startUnsealed, refused } = require('./harness');

const SECRET = 'hunter2-node-audit';

let server;
let vault;
let rootToken;
let logPath;

before(async () => {
  ({ server, vault, rootToken } = await startUnsealed());
  logPath = path.join(server.tmp, 'audit.log');
});
after(() => server?.stop());

const entries = () =>
  fs.readFileSync(logPath, 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l));

test('enableAudit adds a file device; audits lists it', async () => {
  await vault.enableAudit({ name: 'file', type: 'file', description: 'json lines', options: { file_path: logPath } });
  const a = await vault.audits();
  assert.equal(a.data['file/'].type, 'file');
  assert.equal(a.data['file/'].path, 'file/');
  assert.equal(a.data['file/'].description, 'json lines');
  assert.equal(a.data['file/'].options.file_path, logPath);
  assert.ok(fs.existsSync(logPath));
});

test('a write and a read land in the file as JSON, values HMAC\'d, never in clear', async () => {
  await vault.write('secret/data/audited', { data: { pw: SECRET } });
  assert.equal((await vault.read('secret/data/audited')).data.data.pw, SECRET);

  const text = fs.readFileSync(logPath, 'utf8');
  assert.ok(!text.includes(SECRET), 'the secret is in the audit log in clear');
  assert.ok(!text.includes(rootToken), 'the root token is in the audit log in clear');

  const lines = entries();
  const onPath = lines.filter((l) => l.request && l.request.path === 'secret/data/audited');
  // A write to a key that does not exist yet is a `create` (Vault's existence check).
  const write = onPath.find((l) => l.type === 'request' && l.request.operation === 'create');
  const read = onPath.find((l) => l.type === 'response' && l.request.operation === 'read');
  assert.ok(write, 'no request entry for the write');
  assert.ok(read, 'no response entry for the read');

  const hmac = /^hmac-sha256:[0-9a-f]{64}$/;
  assert.match(write.request.data.data.pw, hmac);
  assert.match(read.response.data.data.pw, hmac);
  assert.equal(read.response.data.data.pw, write.request.data.data.pw);
  assert.match(write.request.client_token, hmac);
  assert.match(write.auth.client_token, hmac);
  assert.deepEqual(write.auth.policies, ['root']);
  assert.ok(Date.parse(write.time) > 0);
  assert.equal(typeof write.request.id, 'string');
  // The response line of a request carries the same request id.
  assert.ok(onPath.some((l) => l.type === 'response' && l.request.id === write.request.id));

  // sys/audit-hash/file gives the HMAC the device wrote.
  const h = await vault.write('sys/audit-hash/file', { input: SECRET });
  assert.equal(h.data.hash, write.request.data.data.pw);
});

test('sys/audit-hash answers the hash at the top level too, as Vault does', async () => {
  // Vault copies the data of /v1/sys/audit-hash/ answers to the top level (injectDataIntoTopRoutes).
  const h = await vault.write('sys/audit-hash/file', { input: SECRET });
  assert.match(h.data.hash, /^hmac-sha256:/);
  assert.equal(h.hash, h.data.hash);
});

test('a refused request is audited with its error', async () => {
  const stranger = server.client('hvs.not-a-token');
  assert.equal((await refused(stranger.read('secret/data/audited'))).status, 403);
  const denied = entries().filter(
    (l) => l.request && l.request.path === 'secret/data/audited' && /permission denied/.test(l.error || ''),
  );
  assert.ok(denied.length > 0, 'no audit entry for the denied read');
  assert.ok(!fs.readFileSync(logPath, 'utf8').includes('hvs.not-a-token'));
});

test('disableAudit removes the device and the file stops growing', async () => {
  await vault.disableAudit({ name: 'file' });
  assert.equal((await vault.audits()).data['file/'], undefined);
  const size = fs.statSync(logPath).size;
  await vault.read('secret/data/audited');
  await vault.write('secret/data/audited', { data: { pw: 'after-disable' } });
  assert.equal(fs.statSync(logPath).size, size);
  assert.equal((await refused(vault.write('sys/audit-hash/file', { input: SECRET }))).status, 400);
});
