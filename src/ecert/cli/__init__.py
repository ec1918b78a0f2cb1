"""ecert.cli"""
