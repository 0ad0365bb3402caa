"""Issue 12, items 1-4 and 10: answers that must match Vault's, with the real `hvac` client."""
import hvac
import pytest
import requests
from hvac import exceptions

SYSTEM_TTL = 768 * 3600  # Vault's default and max lease TTL: 2764800 s


def _raw(server, client, method, path, body=None):
    r = requests.request(method, f"{server.addr}/v1/{path}", json=body,
                         headers={"X-Vault-Token": client.token}, timeout=10)
    return r.status_code, (r.json() if r.content else None)


# 1. `path` is the old name of `file_path` (hvac's own docs use it).
def test_audit_option_path_is_the_old_name_of_file_path(server, root_client, tmp_path):
    log = tmp_path / "old-name.log"
    root_client.sys.enable_audit_device(device_type="file", path="oldname", options={"path": str(log)})
    try:
        listed = root_client.sys.list_enabled_audit_devices()["data"]
        assert listed["oldname/"]["options"]["path"] == str(log)
        root_client.secrets.kv.v2.create_or_update_secret(path="via-old-name", secret={"k": "v"})
        assert log.exists() and "secret/data/via-old-name" in log.read_text()
    finally:
        root_client.sys.disable_audit_device("oldname")
    # Neither name given: still a 400 naming the option Vault names.
    with pytest.raises(exceptions.InvalidRequest, match="file_path is required"):
        root_client.sys.enable_audit_device(device_type="file", path="none", options={})


# 2. audit-hash of a device that is not enabled: Vault's message.
def test_audit_hash_of_a_device_not_enabled(root_client):
    with pytest.raises(exceptions.InvalidRequest) as e:
        root_client.sys.calculate_hash(path="tmpfile", input_to_hash="hvac-rox")
    assert e.value.errors == ['unknown audit backend "tmpfile/"']
