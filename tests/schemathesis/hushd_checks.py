"""Schemathesis checks for hushd (SCHEMATHESIS_HOOKS=hushd_checks, from scripts/schemathesis)."""
import schemathesis


@schemathesis.check
def vault_error_shape(ctx, response, case):
    """Every 4xx/5xx answer is Vault's `{"errors": [...]}` (a JSON object, a list of strings).

    The exceptions are Vault's own: a KV v2 read of a deleted or destroyed version answers 404
    with the version's `data` and `metadata` (clients read `metadata.deletion_time`), and
    `sys/health` answers its status body with the code the node's state picks (503 sealed,
    429 standby, or the `*code` query parameters).
    """
    status = response.status_code
    if status < 400 or (case.path == "/sys/health" and status != 400):
        return None
    try:
        body = response.json()
    except Exception as exc:  # noqa: BLE001 - any parse failure is the finding
        raise AssertionError(f"{status} answer is not JSON: {response.text[:200]!r}") from exc
    if not isinstance(body, dict):
        raise AssertionError(f"{status} answer is not a JSON object: {body!r}")
    if status == 404 and isinstance(body.get("data"), dict) and "/data/" in case.path:
        return None
    errors = body.get("errors")
    if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
        raise AssertionError(f'{status} answer lacks {{"errors": [strings]}}: {body!r}')
    return None


@schemathesis.check
def only_documented_server_errors(ctx, response, case):
    """No 5xx but the documented ones: 503 while sealed or on a standby. The run never seals
    and has no storage faults, so a 500 here is a bug."""
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"server error {response.status_code}: {response.text[:300]!r}")
    return None
