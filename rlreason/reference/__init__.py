"""References generated from the code: docs/reference/config.md (the config schema's keys and conf/'s options)
and docs/reference/metrics.md (rlreason.metrics). `python -m rlreason.reference` rewrites both."""
