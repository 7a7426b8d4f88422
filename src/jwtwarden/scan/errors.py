"""Why a scan could not run, or stopped early: one typed hierarchy with stable codes.

These are not token rejections (those are :mod:`jwtwarden.errors`): they say that the
scanner's input was unusable, that the target failed calibration, or that the target
stopped answering. Messages never contain a token, a key or a secret.

::

    ScanError                                   (code: scan_error)
    ├── ScanInputError (+ ValueError)           bad_input
    │   ├── BadScanToken                        bad_token
    │   └── BadScanKey                          bad_key
    ├── CalibrationFailed                       (abstract)
    │   ├── ValidTokenRejected                  valid_token_rejected
    │   ├── GarbageAccepted                     garbage_accepted
    │   ├── MissingTokenAccepted                missing_token_accepted
    │   └── UnexpectedCalibrationAnswer         calibration_unexpected_answer
    └── TargetError                             (abstract)
        ├── TargetUnreachable                   target_unreachable
        ├── TargetTimeout                       target_timeout
        ├── TargetFailing                       target_failing
        ├── JWKSUnavailable                     jwks_unavailable
        └── DeadlineExceeded                    deadline_exceeded
"""

from __future__ import annotations

__all__ = [
    "BadScanKey",
    "BadScanToken",
    "CalibrationFailed",
    "DeadlineExceeded",
    "GarbageAccepted",
    "JWKSUnavailable",
    "MissingTokenAccepted",
    "ScanError",
    "ScanInputError",
    "TargetError",
    "TargetFailing",
    "TargetTimeout",
    "TargetUnreachable",
    "UnexpectedCalibrationAnswer",
    "ValidTokenRejected",
]


class ScanError(Exception):
    """Base of every reason a scan could not run or finish. ``code`` is stable."""

    code: str = "scan_error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code.replace("_", " "))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ScanInputError(ScanError, ValueError):
    """What the scanner was given cannot be used (also a :class:`ValueError`)."""

    code = "bad_input"


class BadScanToken(ScanInputError):
    """The valid token (or the other token) is not a well-formed compact JWT."""

    code = "bad_token"


class BadScanKey(ScanInputError):
    """A public or signing key cannot be loaded, or does not fit the token."""

    code = "bad_key"


class CalibrationFailed(ScanError):
    """The target did not behave like a protected endpoint; no attack was sent."""

    code = "calibration_failed"


class ValidTokenRejected(CalibrationFailed):
    """The valid token was not accepted, so an accepted attack could not be told apart."""

    code = "valid_token_rejected"


class GarbageAccepted(CalibrationFailed):
    """A string that is not a JWT at all was accepted: the endpoint checks nothing."""

    code = "garbage_accepted"


class MissingTokenAccepted(CalibrationFailed):
    """A request without any token was accepted: the endpoint is not protected."""

    code = "missing_token_accepted"


class UnexpectedCalibrationAnswer(CalibrationFailed):
    """A calibration request got an answer that is neither acceptance nor 401/403."""

    code = "calibration_unexpected_answer"


class TargetError(ScanError):
    """The target could not be reached or stopped answering."""

    code = "target_error"


class TargetUnreachable(TargetError):
    """No connection could be made (refused, DNS, TLS...)."""

    code = "target_unreachable"


class TargetTimeout(TargetError):
    """The target did not answer a calibration request within the per-request timeout."""

    code = "target_timeout"


class TargetFailing(TargetError):
    """Too many attack requests in a row failed (timeouts or connection errors)."""

    code = "target_failing"


class JWKSUnavailable(TargetError):
    """The JWKS URL could not be fetched or did not hold a usable key set."""

    code = "jwks_unavailable"


class DeadlineExceeded(TargetError):
    """The whole scan ran over its overall deadline; the rest was skipped."""

    code = "deadline_exceeded"
