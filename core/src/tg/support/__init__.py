"""Support: the vocabulary every stage shares (dtypes, operation codes, errors) and the helpers (environment,
timing, debug levels) with the seed's process helpers (cross_process, early exec). Imports nothing else of tg."""
