"""ecert.signer"""
