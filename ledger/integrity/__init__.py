"""Integrity of the ledger's history (DESIGN §8): the hash chains (``chains``), the numbered
digests over every chain head (``digests``, stored by ``s3``), their Merkle trees (``merkle``),
proofs of one event checked offline (``proofs``), the ledger-wide postings balance
(``postings``), and the one verification runner every check goes through (``runner``)."""
