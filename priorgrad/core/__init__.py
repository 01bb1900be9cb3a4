"""Family-neutral core: the mel front-end, diffusion maths, the prior contract, the training runtime,
checkpoints, params and schema, the registry, trackers, file I/O and code fingerprints. Imports no family."""
