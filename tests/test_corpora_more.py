"""The former home of the corpus-tree builders, kept as an import path for the audio and card tests:
the trees live in tests/helpers/corpus_release_trees.py, the loader tests in
test_corpora_iemocap.py and test_corpora_multilingual.py."""
from __future__ import annotations

from tests.helpers.corpus_release_trees import (eval_block, make_aesdd, make_baved, make_cafe,  # noqa: F401
                                                make_iemocap, make_shemo, make_subesco, make_urdu, tone)

_eval_block = eval_block  # the name test_card.py imports
