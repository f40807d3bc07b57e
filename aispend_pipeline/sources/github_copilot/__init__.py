"""GitHub Copilot Business / Enterprise seats, costed per seat and day."""
