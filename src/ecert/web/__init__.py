"""ecert.web"""
