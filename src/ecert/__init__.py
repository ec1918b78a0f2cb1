"""ecert: a TLS server certificate authority (e-Cert (Server) style) and its subscriber tool."""

__version__ = "0.1.0"
