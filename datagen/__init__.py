"""datagen: LLM-generated training data for sentence embeddings (NGCSE)."""
__version__ = "0.1.0"
