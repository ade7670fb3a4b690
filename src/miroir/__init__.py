"""Miroir: one Meilisearch API in front of a fleet of Meilisearch nodes."""

__version__ = "0.1.0"
