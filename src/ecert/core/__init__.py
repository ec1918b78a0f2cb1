"""ecert.core"""
