"""Servers Chatsite is measured against, side by side in one run."""
