"""PriorGrad Bench core: the vocoder library (see docs/architecture.md for where each concept lives)."""
