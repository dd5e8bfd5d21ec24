"""chroma"""
