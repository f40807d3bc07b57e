"""Keep credentials out of every message: configured secret values and secret-looking text are masked.

Every error the pipeline raises is scrubbed on construction (see `errors.AispendError`), and so is every
log line the run writes, so a provider that echoes a key in its error body, or a URL with
`user:password@`, never reaches stderr, run storage, asset metadata or the DuckDB file.
"""

from __future__ import annotations

import os
import re

MASK = "***"
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET|_PASSWORD|_WEBHOOK_URL|_CONNECTION_STRING)$")
SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\b(ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{8,}"),
    re.compile(r"\bAKIA[0-9A-Z]{12,}"),
    re.compile(r"(?i)(api[_-]?key|secret|password|token|sig|signature)=([^&\s\"']+)"),
)
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
MIN_SECRET_LENGTH = 6


def secret_values() -> list[str]:
    """Values of the configured settings that are credentials, longest first."""
    values = {
        value for name, value in os.environ.items() if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """`text` with every configured credential, URL password and secret-looking token masked."""
    for value in secret_values():
        text = text.replace(value, MASK)
    text = URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) + "=" + MASK) if "=" in m.group(0) else _keep_scheme(m), text)
    return text


def _keep_scheme(match: re.Match[str]) -> str:
    word = match.group(0).split()[0] if " " in match.group(0) else ""
    return f"{word} {MASK}" if word else MASK


def safe_url(url: str) -> str:
    """A URL fit for a message: no `user:password@`, no query string (signatures and keys live there)."""
    return URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", url.split("?", 1)[0])
