"""Experiments: the quick tour (``demo``) and, later, one module per paper reproduction."""
