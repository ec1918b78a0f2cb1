"""ecert.services"""
