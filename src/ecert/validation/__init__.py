"""ecert.validation"""
