"""Readers of Hugging Face config.json files, one module per architecture family, and the rules for a
model_type moeplan has no reader for (``unknown``). ``moeplan.spec.hf.READERS`` maps model_type to reader.

hf.py imports these modules for its READERS table, and they import hf's shared helpers; importing hf
first (here) keeps that order whichever module a caller imports first.
"""

from moeplan.spec import hf  # noqa: F401
