"""Backends: the contract a plugin implements (emitters, runtimes), plugin discovery, backend selection, and the
built-in numpy backend, registered through the same plugin manager as third parties."""
