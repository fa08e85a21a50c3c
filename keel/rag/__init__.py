"""The RAG pipeline's pure domain code: prompts, citations and their versions."""
