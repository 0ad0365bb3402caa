#!/bin/sh
# Issues Hush's in-cluster TLS: a self-signed CA, serving certificates for the injector and
# hushd, the CA as a ConfigMap for agents, and the webhook's caBundle. Idempotent: a CA and
# certificates that are still good (signed by the CA, more than 30 days left) are kept.
# Environment: see job.yaml. Needs sh, openssl (1.1.1+), base64, kubectl.
set -eu
umask 077
cd "${WORKDIR:?}"
ns="${NAMESPACE:?}"
min_left=2592000 # 30 days, in seconds

log() { printf 'hush-certgen: %s\n' "$*" >&2; }

# The value of KEY of Secret NAME, decoded, into FILE; fails when it is absent.
secret_key() {
  kubectl -n "$ns" get secret "$1" -o "jsonpath={.data.$2}" >"$3.b64" 2>/dev/null || return 1
  [ -s "$3.b64" ] || return 1
  base64 -d <"$3.b64" >"$3"
}

# Creates or updates Secret NAME of type TYPE from the given --from-file arguments.
apply_secret() {
  name=$1
  type=$2
  shift 2
  kubectl -n "$ns" create secret generic "$name" --type="$type" "$@" \
    --dry-run=client -o yaml |
    kubectl apply --server-side --force-conflicts --field-manager=hush-certgen -f -
}

# 1. The CA: kept in Secret $CA_SECRET (tls.crt, tls.key) so later runs issue from the same one.
if secret_key "$CA_SECRET" 'tls\.crt' ca.crt && secret_key "$CA_SECRET" 'tls\.key' ca.key &&
  openssl x509 -in ca.crt -noout -checkend "$min_left" >/dev/null; then
  log "keeping CA from Secret $CA_SECRET"
else
  log "making a new CA in Secret $CA_SECRET"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -out ca.crt -days 3650 -subj "/CN=hush-ca.$ns" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  apply_secret "$CA_SECRET" kubernetes.io/tls --from-file=tls.crt=ca.crt --from-file=tls.key=ca.key
fi

# 2. A serving certificate for Service SERVICE in Secret SECRET (tls.crt, tls.key, ca.crt), with
#    extra DNS names (space-separated, relative to $ns.svc) and extra SANs.
issue() {
  secret=$1
  service=$2
  extra_dns=$3
  extra_san=$4
  if secret_key "$secret" 'tls\.crt' cur.crt &&
    openssl verify -CAfile ca.crt cur.crt >/dev/null 2>&1 &&
    openssl x509 -in cur.crt -noout -checkend "$min_left" >/dev/null; then
    log "keeping Secret $secret (valid, signed by the CA)"
    return 0
  fi
  log "issuing Secret $secret for $service.$ns.svc"
  san="DNS:$service,DNS:$service.$ns,DNS:$service.$ns.svc,DNS:$service.$ns.svc.cluster.local"
  for d in $extra_dns; do
    san="$san,DNS:$d.$ns.svc,DNS:$d.$ns.svc.cluster.local"
  done
  [ -z "$extra_san" ] || san="$san,$extra_san"
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=$san" >ext.cnf
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout leaf.key -out leaf.csr -subj "/CN=$service.$ns.svc"
  openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days 397 -extfile ext.cnf -out leaf.crt
  apply_secret "$secret" kubernetes.io/tls \
    --from-file=tls.crt=leaf.crt --from-file=tls.key=leaf.key --from-file=ca.crt=ca.crt
  rm -f leaf.key leaf.csr
}

issue "$INJECTOR_SECRET" "$INJECTOR_SERVICE" "" ""
# hushd also answers on its pod name and, through `kubectl port-forward`, on localhost.
issue "$HUSHD_SECRET" "$HUSHD_SERVICE" "${HUSHD_EXTRA_DNS:-}" "DNS:localhost,IP:127.0.0.1"

# 3. The CA for agents: ConfigMap $CA_CONFIGMAP (ca.crt) in each of $CA_NAMESPACES.
for target in $CA_NAMESPACES; do
  log "publishing ConfigMap $CA_CONFIGMAP in namespace $target"
  kubectl -n "$target" create configmap "$CA_CONFIGMAP" --from-file=ca.crt=ca.crt \
    --dry-run=client -o yaml |
    kubectl apply --server-side --force-conflicts --field-manager=hush-certgen -f -
done

# 4. The webhook trusts the CA ("add" replaces an existing caBundle).
bundle=$(base64 <ca.crt | tr -d '\n')
kubectl patch mutatingwebhookconfiguration "$WEBHOOK" --type=json \
  -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$bundle\"}]"
log "caBundle of $WEBHOOK set; done"
