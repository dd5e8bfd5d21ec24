"""_advisor"""
