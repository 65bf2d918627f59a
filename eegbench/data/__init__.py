"""Dataset loaders of the real formats, their array caches and the registered dataset components.

Each dataset says which units its trials are independent in (``units``): the bootstrap CIs, permutation
tests and chance intervals of every metric resample those units, never trials that share a subject,
a recording or a stimulus image one by one. A level with fewer than ``MIN_UNITS`` units is too small
to resample and is held fixed (the result is then about those subjects), and the note says so.
"""

MIN_UNITS = 10
