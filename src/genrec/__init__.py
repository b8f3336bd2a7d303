"""genrec: generative recommendation with semantic IDs.

Pipeline: data -> text embeddings -> item tokenizer -> model -> evaluation / recommendation.
Each stage lives in its own subpackage and imports only the stages before it.
"""

__version__ = "0.1.0"
