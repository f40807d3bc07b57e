"""The vendors the product knows without a billing API source: the one list of their slugs and billing models.

A vendor's invoices land under its slug (INTERFACE.md, seed files), so an invoice trues up the daily lines of
a vendor that later gains an API source. The source inventory lists every vendor here, invoiced or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from aispend_pipeline.sources.base import FocusProvider


@dataclass(frozen=True)
class KnownVendor:
    slug: str
    title: str
    billing_model: str  # tokens (usage-priced), seats or subscription
    aliases: tuple[str, ...]  # names squashed to [a-z0-9] that mean this vendor on an invoice
    focus: FocusProvider  # its FOCUS ProviderName and billing account type


KNOWN_VENDORS: tuple[KnownVendor, ...] = (
    KnownVendor("cursor", "Cursor", "seats", ("cursor",), FocusProvider("Cursor", "Team")),
    KnownVendor("windsurf", "Windsurf", "seats", ("windsurf",), FocusProvider("Windsurf", "Team")),
    KnownVendor("jetbrains", "JetBrains AI", "seats", ("jetbrainsai", "jetbrains"), FocusProvider("JetBrains")),
    KnownVendor(
        "m365_copilot",
        "Microsoft 365 Copilot",
        "seats",
        ("microsoft365copilot", "m365copilot"),
        FocusProvider("Microsoft", "Billing Account"),
    ),
    KnownVendor("together", "Together AI", "tokens", ("togetherai", "together"), FocusProvider("Together AI")),
    KnownVendor("fireworks", "Fireworks AI", "tokens", ("fireworksai", "fireworks"), FocusProvider("Fireworks AI")),
    KnownVendor("groq", "Groq", "tokens", ("groq",), FocusProvider("Groq")),
    KnownVendor("replicate", "Replicate", "tokens", ("replicate",), FocusProvider("Replicate")),
    KnownVendor("fal", "fal.ai", "tokens", ("falai", "fal"), FocusProvider("fal.ai")),
)

# Invoices may also name a vendor the product reads through an API: they take that source's slug.
API_VENDOR_ALIASES: dict[str, str] = {
    "openrouter": "openrouter",
    "openai": "openai",
    "anthropic": "anthropic",
    "githubcopilot": "github_copilot",
}

VENDOR_SLUGS: dict[str, str] = {
    **{alias: vendor.slug for vendor in KNOWN_VENDORS for alias in vendor.aliases},
    **API_VENDOR_ALIASES,
}
