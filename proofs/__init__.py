"""proofs: every derivation in the source documents, as a checked statement.

Each ``proofs/proof_<topic>.py`` registers its proofs with :func:`proofs._registry.proof`
(numeric check, Markdown in the docstring) and :func:`proofs._registry.symbolic` (sympy
check). ``python -m proofs`` runs them all and prints the table of verdicts; pytest
collects the same functions; ``jacobian-nn verify`` runs them as its ``proofs`` group.
The index and the errata table are in ``proofs/README.md``.
"""
