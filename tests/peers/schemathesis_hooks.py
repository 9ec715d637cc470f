"""Schemathesis hooks for tests/openapi_schemathesis.rs (loaded through SCHEMATHESIS_HOOKS).

tus's PATCH (and creation-with-upload) bodies are `application/offset+octet-stream`:
plain bytes, sent as schemathesis sends `application/octet-stream`.
"""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
