"""ollama_admin"""
