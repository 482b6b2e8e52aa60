"""Credentials for the gateway: loaded from the environment or a 0600 file, redacted everywhere.

The gateway is the only process that holds API keys. This module:
- loads the API key and secret (`load_credentials`) from two environment variables or from a file
  of `api_key=...` / `api_secret=...` lines that must not be group- or world-readable (a 0644 file
  is refused before it is read);
- wraps them in `Secret`, whose repr/str/format never show the value and which refuses pickling;
- builds a `Redactor` that scrubs the key, the secret and any request signature out of text, and
  installs it as a logging filter on every handler (log lines, exceptions in log lines);
- hardens the process (`harden_process`): RLIMIT_CORE = 0 (no core dump can carry a key) and
  PR_SET_DUMPABLE = 0 (no ptrace attach by same-uid processes, /proc/<pid>/mem closed).
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import resource
import stat
from dataclasses import dataclass
from pathlib import Path

REDACTED = "<redacted>"
PR_SET_DUMPABLE = 4

# A request signature in any of the shapes it can take on the wire or in a message:
#   signature=<64 hex>  (REST query/body), "signature": "<hex or base64>" (WS-API JSON)
_SIG_PATTERNS = (
    re.compile(r"(signature=)[^&\s\"']+", re.I),
    re.compile(r"(\"signature\"\s*:\s*\")[^\"]*", re.I),
    re.compile(r"('signature'\s*:\s*')[^']*", re.I),
    re.compile(r"(X-MBX-APIKEY['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+", re.I),
)
_HEX64 = re.compile(r"\b[0-9a-fA-F]{64}\b")


class CredentialError(RuntimeError):
    """Credentials missing or stored unsafely. The message never contains a secret value."""


class Secret:
    """A string that does not print itself. `.reveal()` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str) or not value:
            raise CredentialError("a credential must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self):
        raise TypeError("secrets cannot be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))


@dataclass(frozen=True, repr=False)
class Credentials:
    api_key: Secret
    api_secret: Secret
    source: str                   # "env:NAME" or the file path (no values)

    def __repr__(self) -> str:
        return f"Credentials(api_key={REDACTED}, api_secret={REDACTED}, source={self.source!r})"

    __str__ = __repr__


def _read_file(path: Path) -> dict[str, str]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CredentialError(f"credentials file {path} does not exist") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialError(f"credentials file {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise CredentialError(
            f"credentials file {path} has mode {mode:04o}: it is readable or writable by group or "
            f"others; refusing it (chmod 600 {path})")
    if st.st_uid != os.getuid():
        raise CredentialError(f"credentials file {path} is not owned by this user")
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, sep, v = line.partition("=")
        if not sep:
            raise CredentialError(f"credentials file {path}: line {n} is not key=value")
        k = k.strip()
        if k not in ("api_key", "api_secret", "api_passphrase"):
            raise CredentialError(f"credentials file {path}: line {n}: unknown key {k!r} "
                                  f"(known: api_key, api_secret, api_passphrase)")
        out[k] = v.strip().strip('"').strip("'")
    return out


def load_credentials(*, key_env: str, secret_env: str, file: str = "",
                     environ: dict[str, str] | None = None) -> Credentials:
    """From `file` when given, else from the environment variables `key_env` / `secret_env`."""
    env = os.environ if environ is None else environ
    if file:
        vals = _read_file(Path(file))
        missing = [k for k in ("api_key", "api_secret") if not vals.get(k)]
        if missing:
            raise CredentialError(f"credentials file {file}: missing {', '.join(missing)}")
        return Credentials(Secret(vals["api_key"]), Secret(vals["api_secret"]), file)
    key, sec = env.get(key_env, ""), env.get(secret_env, "")
    if not key or not sec:
        missing = [n for n, v in ((key_env, key), (secret_env, sec)) if not v]
        raise CredentialError(f"credentials: environment variable(s) {', '.join(missing)} not set "
                              f"(or set [gateway].credentials_file to a 0600 file)")
    return Credentials(Secret(key), Secret(sec), f"env:{key_env},{secret_env}")


def load_passphrase(*, env: str, file: str = "", environ: dict[str, str] | None = None) -> Secret:
    """An OKX API key's passphrase: api_passphrase= in `file` when given, else the variable `env`."""
    if file:
        v = _read_file(Path(file)).get("api_passphrase", "")
        if not v:
            raise CredentialError(f"credentials file {file}: missing api_passphrase (OKX keys "
                                  f"have one)")
        return Secret(v)
    v = (os.environ if environ is None else environ).get(env, "")
    if not v:
        raise CredentialError(f"credentials: environment variable {env} (the OKX API key's "
                              f"passphrase) not set (or api_passphrase= in credentials_file)")
    return Secret(v)


class Redactor:
    """Scrubs known secret values and any signature out of text."""

    def __init__(self, *secrets: Secret | str):
        vals = []
        for s in secrets:
            v = s.reveal() if isinstance(s, Secret) else s
            if v and len(v) >= 4:
                vals.append(v)
        # longest first, so a secret containing the key is replaced whole
        self._values = sorted(set(vals), key=len, reverse=True)

    def add(self, secret: Secret | str) -> None:
        """One more value to scrub (an OKX passphrase, loaded by the venue adapter)."""
        v = secret.reveal() if isinstance(secret, Secret) else secret
        if v and len(v) >= 4:
            self._values = sorted(set(self._values) | {v}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """Full scrub (log lines, status, exceptions): values, signature fields, any 64-hex run."""
        return _HEX64.sub(REDACTED, self.fast(text))

    def fast(self, text: str) -> str:
        """The cheap scrub for high-rate records we build ourselves (the journal): secret values
        and signature fields; a few hundred ns when there is nothing to find."""
        if not isinstance(text, str):
            text = str(text)
        for v in self._values:
            if v in text:
                text = text.replace(v, REDACTED)
        low = text.lower()
        if "signature" in low or "x-mbx-apikey" in low:
            for p in _SIG_PATTERNS:
                text = p.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def bytes(self, data: bytes) -> str:
        return self(data.decode("utf-8", "replace"))


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message (and exception) through a Redactor."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not leak or crash
            msg = f"{record.msg!r} (unformattable)"
        if record.exc_info:
            fmt = logging.Formatter()
            msg = msg + "\n" + fmt.formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        if record.stack_info:
            msg = msg + "\n" + record.stack_info
            record.stack_info = None
        record.msg = self.redactor(msg)
        record.args = None
        return True


def install_log_redaction(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of `logger` (root by default) and to the logger itself."""
    lg = logger or logging.getLogger()
    f = RedactingFilter(redactor)
    for h in lg.handlers:
        h.addFilter(f)
    lg.addFilter(f)


def harden_process() -> dict[str, int]:
    """No core dumps, not dumpable. Returns what was set (for the log)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    dumpable_rc = -1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        dumpable_rc = libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    return {"rlimit_core": resource.getrlimit(resource.RLIMIT_CORE)[0],
            "prctl_dumpable_rc": dumpable_rc}
