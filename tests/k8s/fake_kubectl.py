#!/usr/bin/env python3
"""A stand-in for kubectl, for running the cert Job's script (manifests/components/cert-job/
gen-certs.sh) outside a cluster in tests/tests/k8s_manifests.rs.

Objects live as JSON files in $FAKE_KUBE_STATE (KIND.NAMESPACE.NAME.json). Handles exactly the
calls the script makes, and fails loudly on anything else:
  [-n NS] create ... --dry-run=client -o yaml   -> the real kubectl ($REAL_KUBECTL), offline
  [-n NS] get secret NAME -o jsonpath={.data.KEY}
  apply --server-side --force-conflicts --field-manager=M -f -
  patch KIND NAME --type=json -p PATCH            (add/replace ops on a stored object)
Every call is appended to calls.log as a JSON list.
"""
import json
import os
import subprocess
import sys

import yaml

state = os.environ["FAKE_KUBE_STATE"]
args = sys.argv[1:]
with open(os.path.join(state, "calls.log"), "a") as log:
    log.write(json.dumps(args) + "\n")
ns = ""
if args[:1] == ["-n"]:
    ns, args = args[1], args[2:]


def path(kind, namespace, name):
    return os.path.join(state, f"{kind.lower()}.{namespace}.{name}.json")


def fail(message):
    print(f"fake kubectl: {message}", file=sys.stderr)
    sys.exit(1)


verb = args[0] if args else ""
if verb == "create":
    if "--dry-run=client" not in args:
        fail("create without --dry-run=client")
    sys.exit(subprocess.run([os.environ["REAL_KUBECTL"], "-n", ns] + args).returncode)
elif verb == "get":
    kind, name = args[1], args[2]
    out = args[args.index("-o") + 1]
    prefix = "jsonpath={.data."
    if not (out.startswith(prefix) and out.endswith("}")):
        fail(f"unsupported output {out}")
    p = path(kind, ns, name)
    if not os.path.exists(p):
        fail(f'Error from server (NotFound): {kind}s "{name}" not found')
    key = out[len(prefix):-1].replace("\\.", ".")
    sys.stdout.write((json.load(open(p)).get("data") or {}).get(key, ""))
elif verb == "apply":
    if "--server-side" not in args or args[args.index("-f") + 1] != "-":
        fail(f"unsupported apply {args}")
    obj = yaml.safe_load(sys.stdin)
    meta = obj["metadata"]
    with open(path(obj["kind"], meta.get("namespace", ""), meta["name"]), "w") as f:
        json.dump(obj, f)
    print(f"{obj['kind'].lower()}/{meta['name']} serverside-applied")
elif verb == "patch":
    kind, name = args[1], args[2]
    if "--type=json" not in args:
        fail("only JSON patches")
    p = path(kind, ns, name)
    if not os.path.exists(p):
        fail(f'Error from server (NotFound): {kind} "{name}" not found')
    obj = json.load(open(p))
    for op in json.loads(args[args.index("-p") + 1]):
        if op["op"] not in ("add", "replace"):
            fail(f"unsupported op {op['op']}")
        *parents, last = op["path"].strip("/").split("/")
        target = obj
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = op["value"]
    with open(p, "w") as f:
        json.dump(obj, f)
    print(f"{kind}/{name} patched")
else:
    fail(f"unsupported call {sys.argv[1:]}")
