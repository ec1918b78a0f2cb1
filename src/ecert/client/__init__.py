"""ecert.client"""
