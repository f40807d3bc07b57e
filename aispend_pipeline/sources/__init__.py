"""Billing sources, one folder each (client, resource, raw table, normalise SQL, README); see registry.py."""
