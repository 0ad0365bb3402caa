"""hushd's `sys/metrics?format=prometheus` through hvac, parsed by Prometheus' own Python parser
(issue 15, item 3).

hvac 2.4 has no typed method for `sys/metrics` (no `client.sys.read_metrics`), so the test goes
through the client's adapter, as hvac's users do for endpoints it does not wrap: with a text
answer, hvac's JSONAdapter returns the `requests.Response`.
"""
import hvac
from prometheus_client.parser import text_string_to_metric_families


def _scrape(client):
    resp = client.adapter.get("/v1/sys/metrics", params={"format": "prometheus"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(resp.text)}


def test_prometheus_text_parses_and_counts(server, root_client):
    root_client.secrets.kv.v2.create_or_update_secret(path="metrics/app", secret={"pw": "x"})
    root_client.secrets.kv.v2.read_secret_version(path="metrics/app", raise_on_deleted_version=True)
    families = _scrape(root_client)
    expected = {
        "hush_requests": "counter",
        "hush_request_duration_seconds": "histogram",
        "hush_storage_commit_duration_seconds": "histogram",
        "hush_storage_commit_batch_size": "histogram",
        "hush_audit_write_failures": "counter",
        "hush_leases": "gauge",
        "hush_tokens": "gauge",
        "hush_logins": "counter",
        "hush_event_subscribers": "gauge",
        "hush_events_dropped": "counter",
        "hush_sealed": "gauge",
        "hush_process_resident_memory_bytes": "gauge",
        "hush_process_cpu_seconds": "counter",
    }
    for name, kind in expected.items():
        assert name in families, f"{name} missing: {sorted(families)}"
        assert families[name].type == kind, (name, families[name].type)
    reads = [
        s for s in families["hush_requests"].samples
        if s.labels == {"group": "kv", "operation": "read", "status": "2xx"}
    ]
    assert reads and reads[0].value >= 1
    assert families["hush_sealed"].samples[0].value == 0
    commits = {s.name: s.value for s in families["hush_storage_commit_duration_seconds"].samples}
    assert commits["hush_storage_commit_duration_seconds_count"] >= 1
    # No path below the mount, no token in any label.
    for family in families.values():
        for sample in family.samples:
            for value in sample.labels.values():
                assert "metrics/app" not in value and not value.startswith("hvs.")


def test_a_token_without_read_is_refused(server, root_client):
    root_client.sys.create_or_update_policy("metrics-read", 'path "sys/metrics" { capabilities = ["read"] }')
    reader = root_client.auth.token.create(policies=["metrics-read"], ttl="10m")["auth"]["client_token"]
    assert "hush_requests" in _scrape(hvac.Client(url=server.addr, token=reader))
    plain = root_client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    client = hvac.Client(url=server.addr, token=plain)
    try:
        client.adapter.get("/v1/sys/metrics", params={"format": "prometheus"})
    except hvac.exceptions.Forbidden:
        pass
    else:
        raise AssertionError("a token without read on sys/metrics was served")
