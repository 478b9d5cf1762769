"""Test-session isolation: caches go to a temporary folder, never ~/.cache."""
import os
import tempfile

# Set before any jaxser import reads it. Shared by the whole session so the synthetic corpora
# are generated once per test run.
os.environ.setdefault("JAXSER_CACHE", tempfile.mkdtemp(prefix="jaxser-test-cache-"))
