"""KV version 1 through hvac's own `secrets.kv.v1`, and the upgrade of a v1 mount to v2.

Written from Vault's documented behaviour: `kv` without `version` is version 1 (and `generic`
is its old name); a write replaces the whole secret; a `ttl` field comes back as
`lease_duration` (else the mount's default lease TTL, 768h by default) with no lease;
`sys/mounts/:path/tune` with `options.version=2` upgrades a v1 mount and every secret
becomes version 1; a downgrade is refused ("cannot downgrade mount from version 2").
"""
import hvac
import pytest
import requests
from hvac import exceptions

SYSTEM_DEFAULT_TTL = 768 * 3600


def mount_options(client, path):
    return client.sys.list_mounted_secrets_engines()["data"][path + "/"]


def test_kv_without_version_is_v1(root_client):
    root_client.sys.enable_secrets_engine("kv", path="kv1")
    m = mount_options(root_client, "kv1")
    assert m["type"] == "kv"
    assert (m["options"] or {}).get("version") in (None, "1")
    # The vault CLI asks this to learn the version: no "2" here means KV v1.
    ui = root_client.adapter.get("/v1/sys/internal/ui/mounts/kv1/app")["data"]
    assert ui["path"] == "kv1/" and (ui["options"] or {}).get("version") != "2"

    kv = root_client.secrets.kv.v1
    kv.create_or_update_secret(path="app/db", secret={"user": "app", "pw": "1", "extra": {"a": [1, 2]}},
                               mount_point="kv1")
    read = kv.read_secret(path="app/db", mount_point="kv1")
    assert read["data"] == {"user": "app", "pw": "1", "extra": {"a": [1, 2]}}
    assert read["lease_id"] == "" and read["renewable"] is False
    assert read["lease_duration"] == SYSTEM_DEFAULT_TTL
    # A write replaces the whole secret: no merge, no versions.
    kv.create_or_update_secret(path="app/db", secret={"pw": "2"}, mount_point="kv1")
    assert kv.read_secret(path="app/db", mount_point="kv1")["data"] == {"pw": "2"}
    kv.create_or_update_secret(path="app/api", secret={"k": "v"}, mount_point="kv1", method="POST")
    kv.create_or_update_secret(path="top", secret={"x": 1}, mount_point="kv1", method="PUT")
    assert kv.list_secrets(path="app", mount_point="kv1")["data"]["keys"] == ["api", "db"]
    assert kv.list_secrets(path="", mount_point="kv1")["data"]["keys"] == ["app/", "top"]
    kv.delete_secret(path="app/api", mount_point="kv1")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret(path="app/api", mount_point="kv1")
    with pytest.raises(exceptions.InvalidPath):
        kv.list_secrets(path="nothing", mount_point="kv1")
    # v2 paths mean nothing special on a v1 mount.
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret(path="data/app/db", mount_point="kv1")


def test_ttl_field_is_the_lease_duration_hint(root_client):
    kv = root_client.secrets.kv.v1
    root_client.sys.enable_secrets_engine("kv", path="kvttl", options={"version": "1"})
    kv.create_or_update_secret(path="hinted", secret={"ttl": "1h", "v": "x"}, mount_point="kvttl")
    read = kv.read_secret(path="hinted", mount_point="kvttl")
    assert read["lease_duration"] == 3600 and read["lease_id"] == ""
    assert read["data"] == {"ttl": "1h", "v": "x"}
    kv.create_or_update_secret(path="secs", secret={"ttl": 90}, mount_point="kvttl")
    assert kv.read_secret(path="secs", mount_point="kvttl")["lease_duration"] == 90
    # No ttl: the mount's default lease TTL; a ttl over the mount's max is capped.
    root_client.sys.tune_mount_configuration(path="kvttl", default_lease_ttl="10m", max_lease_ttl="2h")
    kv.create_or_update_secret(path="plain", secret={"v": 1}, mount_point="kvttl")
    assert kv.read_secret(path="plain", mount_point="kvttl")["lease_duration"] == 600
    kv.create_or_update_secret(path="long", secret={"ttl": "5h"}, mount_point="kvttl")
    assert kv.read_secret(path="long", mount_point="kvttl")["lease_duration"] == 7200
    # Nothing was registered: no lease under the mount.
    with pytest.raises(exceptions.InvalidPath):
        root_client.sys.list_leases(prefix="kvttl/")


def test_version_1_option_generic_alias_and_kv_v1(root_client):
    kv = root_client.secrets.kv.v1
    root_client.sys.enable_secrets_engine("kv", path="kvone", options={"version": 1})
    assert mount_options(root_client, "kvone")["options"]["version"] == "1"
    root_client.sys.enable_secrets_engine("generic", path="gen")
    assert mount_options(root_client, "gen")["type"] == "generic"
    root_client.sys.enable_secrets_engine("kv-v1", path="kvv1")
    assert mount_options(root_client, "kvv1")["type"] == "kv"
    for mount in ("kvone", "gen", "kvv1"):
        kv.create_or_update_secret(path="a/b", secret={"mount": mount}, mount_point=mount)
        assert kv.read_secret(path="a/b", mount_point=mount)["data"] == {"mount": mount}
        assert kv.list_secrets(path="a", mount_point=mount)["data"]["keys"] == ["b"]


def test_policies_apply_as_for_any_path(server, root_client):
    root_client.sys.enable_secrets_engine("kv", path="kvpol")
    kv = root_client.secrets.kv.v1
    kv.create_or_update_secret(path="team/existing", secret={"v": 1}, mount_point="kvpol")
    kv.create_or_update_secret(path="other/x", secret={"v": 1}, mount_point="kvpol")
    root_client.sys.create_or_update_acl_policy(name="kv1-team", policy='''
path "kvpol/team/*" { capabilities = ["read", "update", "list"] }
path "kvpol/team" { capabilities = ["list"] }
''')
    tok = root_client.auth.token.create(policies=["kv1-team"], ttl="1h")["auth"]["client_token"]
    user = hvac.Client(url=server.addr, token=tok)
    ukv = user.secrets.kv.v1
    assert ukv.read_secret(path="team/existing", mount_point="kvpol")["data"] == {"v": 1}
    # update (the key exists) is allowed; create (it does not) is not.
    ukv.create_or_update_secret(path="team/existing", secret={"v": 2}, mount_point="kvpol", method="PUT")
    with pytest.raises(exceptions.Forbidden):
        ukv.create_or_update_secret(path="team/new", secret={"v": 1}, mount_point="kvpol", method="POST")
    assert ukv.list_secrets(path="team", mount_point="kvpol")["data"]["keys"] == ["existing"]
    with pytest.raises(exceptions.Forbidden):
        ukv.read_secret(path="other/x", mount_point="kvpol")
    with pytest.raises(exceptions.Forbidden):
        ukv.delete_secret(path="team/existing", mount_point="kvpol")


def test_upgrade_v1_to_v2_keeps_the_data(server, root_client):
    root_client.sys.enable_secrets_engine("kv", path="up")
    kv1 = root_client.secrets.kv.v1
    secrets = {"app/db": {"pw": "s3cret", "ttl": "30m"}, "app/api": {"key": "k"}, "top": {"n": {"deep": [1]}}}
    for path, data in secrets.items():
        kv1.create_or_update_secret(path=path, secret=data, mount_point="up")

    resp = root_client.sys.tune_mount_configuration(path="up", options={"version": "2"})
    body = resp.json() if hasattr(resp, "json") else resp
    assert any("Upgrading mount from version" in w for w in body["warnings"]), body
    assert mount_options(root_client, "up")["options"]["version"] == "2"
    ui = root_client.adapter.get("/v1/sys/internal/ui/mounts/up")["data"]
    assert ui["options"]["version"] == "2"

    kv2 = root_client.secrets.kv.v2
    for path, data in secrets.items():
        read = kv2.read_secret_version(path=path, mount_point="up", raise_on_deleted_version=True)
        assert read["data"]["data"] == data
        assert read["data"]["metadata"]["version"] == 1
    assert kv2.list_secrets(path="", mount_point="up")["data"]["keys"] == ["app/", "top"]
    assert kv2.read_secret_metadata(path="app/db", mount_point="up")["data"]["current_version"] == 1
    assert kv2.create_or_update_secret(path="top", secret={"n": 2}, mount_point="up")["data"]["version"] == 2
    # Tuning to the same version again changes nothing.
    root_client.sys.tune_mount_configuration(path="up", options={"version": "2"})
    assert kv2.read_secret_version(path="top", mount_point="up", raise_on_deleted_version=True)["data"]["data"] == {"n": 2}


def test_bad_input(server, root_client):
    root_client.sys.enable_secrets_engine("kv", path="kvbad")
    headers = {"X-Vault-Token": root_client.token}
    # A write with no fields.
    r = requests.post(f"{server.addr}/v1/kvbad/x", json={}, headers=headers)
    assert r.status_code == 400 and r.json() == {"errors": ["missing data fields"]}
    # Paths a secret cannot have.
    r = requests.post(f"{server.addr}/v1/kvbad/a%2F%2Fb", json={"v": 1}, headers=headers)
    assert r.status_code == 400 and r.json()["errors"]
    # KV v1 has no PATCH.
    r = requests.patch(f"{server.addr}/v1/kvbad/x", json={"v": 1},
                       headers={**headers, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 405 and "errors" in r.json()
    # Versions other than 1 and 2, at mount time and at tune time.
    with pytest.raises(exceptions.InvalidRequest, match="hushd serves kv versions 1 and 2"):
        root_client.sys.enable_secrets_engine("kv", path="kv3", options={"version": "3"})
    with pytest.raises(exceptions.InvalidRequest, match="invalid version provided: 3"):
        root_client.sys.tune_mount_configuration(path="kvbad", options={"version": "3"})
    with pytest.raises(exceptions.InvalidRequest, match="does not allow setting a version"):
        root_client.sys.enable_secrets_engine("database", path="db-ver", options={"version": "2"})
    # A downgrade v2 -> v1 is refused, as Vault does, and the mount stays v2.
    root_client.sys.enable_secrets_engine("kv", path="kvtwo", options={"version": "2"})
    with pytest.raises(exceptions.InvalidRequest, match="cannot downgrade mount from version 2"):
        root_client.sys.tune_mount_configuration(path="kvtwo", options={"version": "1"})
    r = requests.post(f"{server.addr}/v1/sys/mounts/kvtwo/tune", json={"options": {"version": "1"}},
                      headers=headers)
    assert r.status_code == 400 and r.json() == {"errors": ["cannot downgrade mount from version 2"]}
    assert mount_options(root_client, "kvtwo")["options"]["version"] == "2"
    root_client.secrets.kv.v2.create_or_update_secret(path="still", secret={"v": 1}, mount_point="kvtwo")
