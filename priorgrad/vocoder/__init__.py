"""The vocoder family (mel -> waveform): DiffWave, its priors (standard, energy, SpecGrad), features, training,
synthesis. Imports the core and the corpus, never the acoustic family."""
