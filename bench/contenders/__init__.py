"""Contenders: one module each, each with ``make()`` returning a ``base.Contender``.

Add one by writing a module here and naming it in ``--contenders``.
"""
