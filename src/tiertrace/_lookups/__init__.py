"""_lookups"""
