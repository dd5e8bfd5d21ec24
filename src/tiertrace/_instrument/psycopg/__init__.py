"""psycopg"""
