"""Bounds the CLI checks at parse time, in a module with no imports: ``edgerec --help`` must not
pay for numpy. The thread cap is the runtime's (``runtime.MAX_THREADS``, the artifact contract's
owner), read only when ``--threads`` is given (:class:`ThreadCount`)."""

MAX_USERS = 100_000  # synthetic data: about 1 ms a user at 2,000 items
MAX_ITEMS = 100_000
MAX_COMMUNITIES = 1_000
