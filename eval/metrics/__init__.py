"""One module per metric family; each function takes an ``eval.pair.Pair`` and returns a float.

Functions of a family share their expensive analysis through ``Pair.memo`` (resampling, WORLD,
DNSMOS inference), so asking for several metrics of a family costs about as much as one.
"""
