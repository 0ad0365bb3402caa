'use strict';
// A real hushd process on SQLite, initialised and unsealed through node-vault itself.
// The node twin of tests/compat/conftest.py: one server per test file, killed at the end.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const nodeVault = require('node-vault');

const ROOT = path.resolve(__dirname, '..', '..', '..');

function bin(name) {
  const dir = process.env.HUSH_BIN_DIR || path.join(ROOT, 'target', 'debug');
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} not found: run \`cargo build --workspace --bins\` first`);
  }
  return file;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Server {
  static async start() {
    const hushd = bin('hushd');
    const s = new Server();
    s.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hush-node-'));
    s.port = await freePort();
    s.addr = `http://127.0.0.1:${s.port}`;
    s.logPath = path.join(s.tmp, 'hushd.log');
    const log = fs.openSync(s.logPath, 'w');
    s.proc = spawn(
      hushd,
      ['--storage', `sqlite://${s.tmp}/hush.db`, '--insecure-no-tls', '--listen', `127.0.0.1:${s.port}`],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    s.exited = new Promise((r) => s.proc.once('exit', r));
    s.killOnExit = () => s.proc.kill('SIGKILL');
    process.once('exit', s.killOnExit);
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await fetch(`${s.addr}/v1/sys/seal-status`, { signal: AbortSignal.timeout(1000) });
        return s;
      } catch (err) {
        if (s.proc.exitCode !== null || s.proc.signalCode !== null || Date.now() > deadline) {
          const log = fs.readFileSync(s.logPath, 'utf8');
          await s.stop();
          throw new Error(`hushd did not start: ${log}`);
        }
        await sleep(20);
      }
    }
  }

  /** A fresh node-vault client pointed at this server, with `token` if given. */
  client(token) {
    return nodeVault({ endpoint: this.addr, token });
  }

  async stop() {
    process.removeListener('exit', this.killOnExit);
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

/**
 * Start hushd, initialise it (5 shares, threshold 3) and unseal it with node-vault, and mount
 * kv v2 at secret/. Returns { server, vault (root client), keys, rootToken }.
 */
async function startUnsealed() {
  const server = await Server.start();
  const vault = server.client();
  const init = await vault.init({ secret_shares: 5, secret_threshold: 3 });
  for (const key of init.keys.slice(0, 3)) {
    await vault.unseal({ key });
  }
  vault.token = init.root_token;
  await vault.mount({ mount_point: 'secret', type: 'kv', options: { version: '2' } });
  return { server, vault, keys: init.keys, rootToken: init.root_token };
}

/** The Vault status code of a node-vault call that must fail, and its error list. */
async function refused(promise) {
  try {
    await promise;
  } catch (err) {
    if (err.response) return { status: err.response.statusCode, body: err.response.body };
    throw err;
  }
  throw new Error('expected the call to be refused, it succeeded');
}

module.exports = { Server, startUnsealed, refused, bin };
