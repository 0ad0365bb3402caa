"""Write load for the HA test (tests/tests/store_ha.rs), not a pytest module: THREADS hvac
clients, spread over the given nodes, each writing its own KV v2 keys until SECONDS pass.
hvac follows a standby's 307 to the active node by itself. Every acknowledged write is
recorded with when it was acknowledged, every failure with when it happened; the JSON goes
to OUT.

    ha_writers.py --addrs http://a,http://b --token T --threads 64 --seconds 20 --out FILE
"""
import argparse
import json
import threading
import time

import hvac


def writer(n, addr, token, until, acked, failed, lock):
    client = hvac.Client(url=addr, token=token, timeout=5)
    i = 0
    while time.time() < until:
        key = f"ha/t{n}/k{i}"
        value = f"{n}-{i}"
        i += 1
        try:
            resp = client.secrets.kv.v2.create_or_update_secret(
                path=key, secret={"v": value}, mount_point="secret")
            version = resp["data"]["version"]
            with lock:
                acked.append([n, key, value, version, time.time()])
        except Exception as e:  # noqa: BLE001 - every failure is data here
            with lock:
                failed.append([n, time.time(), type(e).__name__, str(e)[:200]])
            time.sleep(0.05)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addrs", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--threads", type=int, default=64)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    addrs = a.addrs.split(",")
    until = time.time() + a.seconds
    acked, failed, lock = [], [], threading.Lock()
    threads = [
        threading.Thread(target=writer,
                         args=(n, addrs[n % len(addrs)], a.token, until, acked, failed, lock))
        for n in range(a.threads)
    ]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(a.out, "w") as f:
        json.dump({"start": start, "acked": acked, "failed": failed}, f)


if __name__ == "__main__":
    main()
