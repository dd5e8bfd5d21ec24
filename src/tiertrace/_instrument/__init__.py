"""_instrument"""
