"""Answers checked against a reference: Miroir against one devnode holding everything
(test_oracle.py), and the optimised pure code against the reference implementations or the
frozen answers it replaced (the *_equivalence files)."""
