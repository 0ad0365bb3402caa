#!/usr/bin/env python3
"""Write the seed corpora (fuzz/corpus/<target>/) from examples the unit tests use.

Run from the repository root: python3 fuzz/seeds/make_corpus.py. Files found by fuzzing
(crashes kept as regressions) sit beside these under names that do not start with `seed-`.
"""
import base64, hashlib, json, os, pathlib

root = pathlib.Path(__file__).resolve().parents[2]
corpus = root / "fuzz" / "corpus"


def put(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


# http_request: METHOD\nURI\nheaders\n\nbody
put("http_request", "put-secret", 'PUT\n/v1/secret/data/app/db\nx-vault-token: hvs.abc\ncontent-type: application/json\n\n{"data":{"password":"s3cr3t","user":"app"}}')
put("http_request", "list", "GET\n/v1/secret/metadata/?list=true\nauthorization: Bearer t\n\n")
put("http_request", "wrap", "POST\n/v1/sys/wrapping/wrap\nx-vault-wrap-ttl: 5m\nx-vault-wrap-format: token\n\n{\"a\":1}")
put("http_request", "encoded", "DELETE\n/v1/secret/data/a%20b?version=3&x=%2F+y\n\n")
put("http_request", "list-method", "LIST\n/v1/auth/approle/role/\n\n")
put("http_request", "dotdot", "GET\n/v1/secret/%2e%2e/sys/seal\n\n")

# policy: the parser's unit-test policies
put("policy", "hcl", '''
# comment
path "secret/data/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
// another comment
path "/secret/metadata/+" { capabilities = ["list"] }
''')
put("policy", "json", '{"path": {"secret/*": {"capabilities": ["read", "list"]}, "sys/mounts": {"capabilities": ["deny"]}}}')
put("policy", "json-array", '{"path": [{"secret/*": {"capabilities": ["read"]}}]}')
put("policy", "dup-deny", 'path "a" { capabilities = ["read"] }\npath "a" { capabilities = ["update"] }\npath "b" { capabilities = ["read", "deny"] }\n')
put("policy", "legacy", 'path "a/*" { policy = "write" }\npath "b" { policy = "sudo" }\n')
put("policy", "events", '''
path "secret/data/*" {
  capabilities = ["read", "subscribe"]
  subscribe_event_types = ["kv-v2/data-*", "kv-v2/metadata-write"]
}
path "secret/data/*" { subscribe_event_types = ["kv-v2/data-*", "kv-v1/*"] }
''')
put("policy", "name-attr", 'name = "x"\npath "a/+/b/+*" { capabilities = ["read"] }\n')

# agent_config: the config fixtures
fixtures = root / "agent" / "src" / "config" / "fixtures"
for f in sorted(fixtures.glob("good_*.toml")) + [fixtures / "bad_mode.toml", fixtures / "bad_template_syntax.toml", fixtures / "bad_unknown_secret.toml"]:
    put("agent_config", f.stem, f.read_bytes())

# template: template \0 db-json \0 api-json
db = json.dumps({"user": "app", "password": "pa$$'word\nx", "port": 5432, "tls": True})
api = json.dumps({"key": "k-123", "nested": {"a": [1, 2]}})
put("template", "good-full", "user={{ secrets.db.user }}\nkey={{ secrets.api.key }}\n\0" + db + "\0" + api)
put("template", "loop", "{% for k, v in secrets.db|items %}{{ k }}={{ v }}\n{% endfor %}{{ secrets.api.nested.a|join(',') }}\0" + db + "\0" + api)
put("template", "undefined", "{{ secrets.db.nope }}\0" + db + "\0" + api)
put("template", "syntax", "value={{ secrets.db.a \n\0" + db + "\0" + api)
put("template", "filters", "{{ secrets.db.password|upper|replace('A','b') }}{{ secrets.db|tojson }}\0" + db + "\0" + api)


# audit_verify: [pos_hi, pos_lo, mask] + lines (entries); a chained file as raw bytes too
def chain(entries):
    prev = "sha256:" + "0" * 64
    out = b""
    for seq, e in enumerate(entries, 1):
        e = dict(e)
        e["hash_chain"] = {"seq": seq, "prev": prev}
        line = json.dumps(e, separators=(",", ":")).encode()
        prev = "sha256:" + hashlib.sha256(line).hexdigest()
        out += line + b"\n"
    return out


entries = [
    {"time": "2025-01-01T00:00:00Z", "type": "request", "auth": {"client_token": "hmac-sha256:ab"}, "request": {"id": "r1", "operation": "read", "path": "secret/data/app"}},
    {"time": "2025-01-01T00:00:00Z", "type": "response", "request": {"id": "r1", "path": "secret/data/app"}, "response": {"data": {"password": "hmac-sha256:cd"}}},
]
lines = b"\n".join(json.dumps(e).encode() for e in entries)
put("audit_verify", "entries", b"\x00\x10\x01" + lines)
put("audit_verify", "chained-file", chain(entries))
put("audit_verify", "one-plain", b"\x01\x00\x80not json")

# jws: mode 0 = token text, 1 = JWKS, 2 = [bit hi, bit lo] + payload to sign
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

claims = {"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:default:app", "aud": ["hushd"], "exp": 1735693200, "iat": 1735689600, "nbf": 1735689600}
token = b64(b'{"alg":"EdDSA","kid":"k1"}') + "." + b64(json.dumps(claims).encode()) + "." + b64(b"\x00" * 64)
put("jws", "token", b"\x00" + token.encode())
put("jws", "alg-none", b"\x00" + (b64(b'{"alg":"none"}') + "." + b64(b"{}") + ".").encode())
put("jws", "jwks", b"\x01" + json.dumps({"keys": [
    {"kty": "OKP", "crv": "Ed25519", "x": "NiXW68AokA4zQs-mCXGayaQqbEuJFrYwnYQK82zXvfM", "kid": "k1", "use": "sig", "alg": "EdDSA"},
    {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "e1"},
    {"kty": "RSA", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw", "e": "AQAB", "kid": "r1"}]}).encode())
put("jws", "signed-claims", b"\x02\x01\x00" + json.dumps(claims).encode())
put("jws", "signed-expired", b"\x02\x00\x07" + json.dumps({"exp": 1000, "aud": "x"}).encode())

# sts_answer: mode 0 = any answer, 1 = arn \0 user id \0 account written into an answer
doc = ('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
       '<GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/app/i-0abc</Arn>'
       '<UserId>AROAEXAMPLE:i-0abc</UserId><Account>123456789012</Account></GetCallerIdentityResult>'
       '<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>')
put("sts_answer", "identity", b"\x00" + doc.encode())
put("sts_answer", "error", b"\x00<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error></ErrorResponse>")
put("sts_answer", "entity", b"\x00" + doc.replace("app/", "a&amp;p&#112;/").encode())
put("sts_answer", "values", b"\x01arn:aws:iam::123456789012:user/path/to/alice\0AIDAEXAMPLE\x00123456789012")

# barrier_entry: mode 0 = raw stored bytes, 1 = [bit hi, bit lo] + value, 2 = [pos, mask]
put("barrier_entry", "raw-header", b"\x00\x01\x00\x00\x00\x02" + bytes(12) + bytes(16))
put("barrier_entry", "value", b"\x01\x00\x29" + json.dumps({"data": {"password": "s3cr3t"}}).encode())
put("barrier_entry", "term-byte", b"\x02\x04\x03")
put("barrier_entry", "version-byte", b"\x02\x00\x02")
