"""Bytes and containers: random access to a file or URL, zip directories, format detection."""
