"""Test-session isolation: caches go to a temporary folder, never ~/.cache."""
import os
import tempfile

# Set before any jaxser import reads it. Shared by the whole session so the synthetic corpora
# are generated once per test run.
os.environ.setdefault("JAXSER_CACHE", tempfile.mkdtemp(prefix="jaxser-test-cache-"))
# The Hugging Face cache (and the commits jaxser pins beside it) of the tests' fake Hub, never ~/.cache.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="jaxser-test-hf-")

# openSMILE aborts if TensorFlow's symbols were loaded first (see handcrafted.preload_opensmile);
# tests import TF directly to build SavedModels, so bind openSMILE's library up front.
from jaxser.encoders.handcrafted import preload_opensmile  # noqa: E402

preload_opensmile()
