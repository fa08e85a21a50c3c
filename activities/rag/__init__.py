"""The RAG pipeline's stages: query processing, search and fusion, reranking, context, prompt.

Pure modules (`query`, `prompt`) are safe to import from workflow code; the activity classes
live in `activities.rag.activities`.
"""
