"""Which remote read errors a worker reads again (spec.maxRetries): throttles and server errors, never a 404."""

from __future__ import annotations

import pytest

from harness.ci import missing
from phashfleet.files.opening import _remote_failure, is_transient

try:
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error
except ImportError as exc:  # the s3 extra
    ClientError = None
    _MISSING = str(exc)


def s3_error(code: str, status: int) -> BaseException:
    """An S3 error as s3fs raises it: botocore's ClientError translated into an OSError subclass."""
    if ClientError is None:
        missing(f"the s3 extra (botocore, s3fs) is missing: {_MISSING}")
    return translate_boto_error(
        ClientError(
            {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
        )
    )


@pytest.mark.parametrize(
    ("code", "status", "transient", "reason"),
    [
        ("SlowDown", 503, True, "read_error:"),
        ("InternalError", 500, True, "read_error:"),
        ("NoSuchKey", 404, False, "not_found:"),
        ("AccessDenied", 403, False, "permission_denied:"),
        ("InvalidRange", 416, False, "read_error:"),
    ],
)
def test_s3_throttles_and_server_errors_are_transient(code, status, transient, reason):
    error = s3_error(code, status)
    assert is_transient(error) is transient
    assert _remote_failure(error, "s3://bucket/key.jpg").reason.startswith(reason)


def test_dropped_connections_are_transient_and_bugs_are_not():
    assert is_transient(ConnectionResetError("reset by peer"))
    assert is_transient(TimeoutError())
    assert not is_transient(ValueError("a bug"))
    assert not is_transient(FileNotFoundError("gone"))
