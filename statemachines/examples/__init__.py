"""Example machines shipped with the package: run them, read them, copy them."""
