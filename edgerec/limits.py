"""Bounds the CLI checks at parse time, in a module with no imports: ``edgerec --help`` must not
pay for numpy (the runtime package, which owns ``MAX_THREADS``, imports it)."""

MAX_USERS = 100_000  # synthetic data: about 1 ms a user at 2,000 items
MAX_ITEMS = 100_000
MAX_COMMUNITIES = 1_000
MAX_THREADS = 256  # = runtime.MAX_THREADS (a test checks they agree)
