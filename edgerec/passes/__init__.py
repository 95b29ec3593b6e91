"""Compiler passes: each is a function ``IR -> (IR, PassReport)``."""
