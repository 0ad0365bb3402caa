"""Issue 17, part 1: password policies (`sys/policies/password`) with the real `hvac` client.

hvac 2.4 has no password-policy methods; Vault's docs use the generic `vault write`/`read`,
which are hvac's `write_data`/`read`/`list`/`delete`.
"""
import pytest
from hvac import exceptions

POLICY = """length = 24
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset = "0123456789"
  min-chars = 4
}
rule "charset" {
  charset = "-_."
  min-chars = 1
}
"""
ALLOWED = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _satisfies(pw):
    return (len(pw) == 24 and set(pw) <= ALLOWED
            and sum(c.islower() for c in pw) >= 2
            and sum(c.isdigit() for c in pw) >= 4
            and sum(c in "-_." for c in pw) >= 1)


def test_write_read_list_generate_delete(root_client):
    root_client.write_data("sys/policies/password/hvac", data={"policy": POLICY})
    assert root_client.read("sys/policies/password/hvac")["data"]["policy"] == POLICY
    assert "hvac" in root_client.list("sys/policies/password")["data"]["keys"]
    drawn = set()
    for _ in range(200):
        pw = root_client.read("sys/policies/password/hvac/generate")["data"]["password"]
        assert _satisfies(pw), pw
        drawn.add(pw)
    assert len(drawn) == 200
    root_client.delete("sys/policies/password/hvac")
    # hvac's read answers None for a 404, as for any missing path.
    assert root_client.read("sys/policies/password/hvac/generate") is None
    assert root_client.read("sys/policies/password/hvac") is None


def test_bad_policies_are_invalid_requests(root_client):
    for policy, message in [
        ("length = 3\nrule \"charset\" {\n charset = \"ab\"\n}\n",
         "passwords must be between 4 and 100 characters"),
        ("length = 4\nrule \"charset\" {\n charset = \"ab\"\n min-chars = 5\n}\n",
         "invalid password policy: specified rules require at least 5 characters but 4 is specified"),
        ("length = 8\n", "invalid password policy: no charset specified"),
    ]:
        with pytest.raises(exceptions.InvalidRequest) as e:
            root_client.write_data("sys/policies/password/bad", data={"policy": policy})
        assert e.value.errors == [message]
