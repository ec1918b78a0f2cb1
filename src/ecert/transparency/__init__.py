"""Certificate Transparency log submission: network code that is not validation, beside validation/.

``client`` talks to one log (RFC 6962 4.1) with a timeout and bounded retries; ``submit`` asks several logs
in parallel, verifies every SCT against its log's key and log ID, and falls back to further logs until the
browsers' policy is met. The signer never sees this code; the issuance pipeline carries SCTs between them.
"""

from .client import LogClient, RetryPolicy
from .submit import CtSubmitter, LogResult, Submission, submitter_from_settings

__all__ = ["CtSubmitter", "LogClient", "LogResult", "RetryPolicy", "Submission", "submitter_from_settings"]
