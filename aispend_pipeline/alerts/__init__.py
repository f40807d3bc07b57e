"""Alerts: anomaly runs and threshold breaches, delivered once to a Slack-compatible webhook."""
