"""Code shared by the tests (importable as ``helpers`` from the tests folder)."""
