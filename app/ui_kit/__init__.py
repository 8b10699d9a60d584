"""Shared pieces of the app's pages: the session's user and small renderers. No SQL here."""
