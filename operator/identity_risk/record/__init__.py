"""The chain of record: signed, hash-chained decisions (``chain``) and their on-disk log (``log``)."""
